"""EndpointRouter: the pure decisions as tables, then single calls and streams against several
emulators on loopback ports (each strategy's choice, failover per error class, cooldown and
recovery, a stream failing over before its first chunk)."""

from __future__ import annotations

import pickle
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from azml_client import (
    APIConnectionError,
    APITimeoutError,
    AzmlError,
    BadRequestError,
    ConfigurationError,
    EndpointClient,
    RateLimitError,
    ResponseFormatError,
    RetryPolicy,
    ServerError,
    StreamInterruptedError,
    UnprocessableEntityError,
)
from azml_client._exceptions import status_error
from azml_client._router import EndpointRouter
from azml_client._router._policy import (
    Health,
    SmoothWeights,
    View,
    annotate,
    choose,
    is_failover_error,
    label,
    next_step,
)
from azml_client.emulator import EmulatorConfig, EmulatorServer, Faults
from azml_client.emulator._runner import stop_all

from .faultserver import free_port, refused_port

pytestmark = pytest.mark.integration

KEY = "router-test-key"
CHAT = [{"role": "user", "content": "Tell me about Paris"}]
#: Small backoffs, so that the rare real wait of a test stays short.
FAST = RetryPolicy(max_retries=2, backoff_base=0.01, backoff_max=0.05)

Emulators = Callable[..., EmulatorServer]


@pytest.fixture(scope="module")
def emulators() -> Iterator[Emulators]:
    """Emulators by name, started on first use and shared by the module's tests (their
    counters are reset before each use); all are stopped at the end."""
    started: dict[str, EmulatorServer] = {}

    def get(name: str, faults: Faults | None = None, **config: Any) -> EmulatorServer:
        server = started.get(name)
        if server is None:
            settings = EmulatorConfig(api_key=KEY, faults=faults or Faults(), **config)
            server = started[name] = EmulatorServer(settings).start()
        server.stats.reset()
        return server

    yield get
    stop_all(list(started.values()))


def client(server: EmulatorServer | str, **kwargs: Any) -> dict[str, Any]:
    """The settings of a serverless client of an emulator (or of a URL): the router builds
    the client, and closes it."""
    url = server if isinstance(server, str) else server.serverless_url
    return {"endpoint_url": url, "api_key": KEY, "api_type": "serverless", **kwargs}


def tried_of(error: BaseException) -> list[tuple[str, str]]:
    """The ``tried`` list a router puts on its errors."""
    tried: list[tuple[str, str]] = vars(error)["tried"]
    return tried


def refused_url() -> str:
    """A loopback URL nothing listens on: every connection is refused."""
    return f"http://127.0.0.1:{refused_port()}/v1"


class FakeClock:
    """The router's clock and sleep: waits advance time instead of passing it."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.waits: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.waits.append(seconds)
        self.now += seconds


def mock(handler: Callable[[httpx.Request], httpx.Response], url: str) -> dict[str, Any]:
    """The settings of a client whose endpoint is ``handler``."""
    return client(url, transport=httpx.MockTransport(handler))


def answer(status: int, **headers: str) -> Callable[[httpx.Request], httpx.Response]:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(status, json={"error": {"message": "no"}}, headers=headers)

    return handler


# -- pure decisions -------------------------------------------------------------------------


def _connection() -> AzmlError:
    return APIConnectionError("refused", url="http://a")


def _model_error(model_status: int | None) -> AzmlError:
    return status_error(424, model_status_code=model_status, model_reason="model_error")


@pytest.mark.parametrize(
    ("error", "fails_over"),
    [
        (_connection(), True),
        (APITimeoutError("slow"), True),
        (StreamInterruptedError("cut"), True),
        (status_error(500), True),
        (status_error(501), True),
        (status_error(503), True),
        (status_error(408), True),
        (status_error(429, retry_after=300), True),
        (status_error(401), True),
        (status_error(403), True),
        (status_error(404), True),
        (_model_error(500), True),
        (_model_error(400), False),
        (_model_error(None), False),
        (status_error(400), False),
        (status_error(413), False),
        (status_error(422), False),
        (ResponseFormatError("bad body"), False),
        (ConfigurationError("bad argument"), False),
    ],
    ids=label,
)
def test_which_failures_fail_over(error: AzmlError, fails_over: bool) -> None:
    assert is_failover_error(error) is fails_over


POLICY = RetryPolicy(max_retries=2, max_retry_after=60)


@pytest.mark.parametrize(
    ("error", "retries", "rate_retries", "policy", "remaining", "wait", "go", "why"),
    [
        (status_error(503), 0, 0, POLICY, None, 0.0, True, ""),
        (status_error(503), 2, 0, POLICY, None, 0.0, False, "retries exhausted"),
        (status_error(400), 0, 0, POLICY, None, 0.0, False, "request itself"),
        (status_error(503), 0, 0, POLICY, None, None, False, "no other endpoint"),
        (status_error(503), 0, 0, POLICY, None, 61.0, False, "max_retry_after"),
        (status_error(503), 0, 0, POLICY, 1.0, 2.0, False, "deadline"),
        (status_error(503), 0, 0, POLICY, 5.0, 2.0, True, ""),
        # The failed endpoint's long Retry-After does not stop the call: another endpoint is free.
        (status_error(429, retry_after=300), 0, 0, POLICY, None, 0.0, True, ""),
        # 429s with a budget of their own do not spend max_retries, and stop at theirs.
        (
            status_error(429),
            2,
            0,
            RetryPolicy(max_retries=2, max_rate_limit_retries=1),
            None,
            0.0,
            True,
            "",
        ),
        (
            status_error(429),
            0,
            1,
            RetryPolicy(max_retries=2, max_rate_limit_retries=1),
            None,
            0.0,
            False,
            "rate-limit retries exhausted",
        ),
    ],
)
def test_next_step_table(
    error: AzmlError,
    retries: int,
    rate_retries: int,
    policy: RetryPolicy,
    remaining: float | None,
    wait: float | None,
    go: bool,
    why: str,
) -> None:
    decision = next_step(
        error,
        retries=retries,
        rate_limit_retries=rate_retries,
        policy=policy,
        remaining=remaining,
        wait=wait,
    )
    assert decision.retry is go
    assert why in decision.why
    if go:
        assert decision.wait == wait


def test_health_rests_grows_and_recovers() -> None:
    policy = RetryPolicy(backoff_base=1.0, backoff_max=8.0)
    health = Health()
    health.failed(status_error(503), sent_at=0.0, now=10.0, policy=policy, rand=lambda: 0.999)
    assert 0.99 < health.resting(10.0) <= 1.0 and health.rested and health.streak == 1
    # A request sent before the rest began fails too: the same episode, nothing added.
    health.failed(status_error(503), sent_at=5.0, now=10.2, policy=policy, rand=lambda: 0.999)
    assert health.streak == 1 and health.resting(10.2) < 1.0
    # The probe after the rest fails: a longer rest.
    health.failed(status_error(503), sent_at=11.5, now=11.5, policy=policy, rand=lambda: 0.999)
    assert health.streak == 2 and 1.99 < health.resting(11.5) <= 2.0
    # A server's Retry-After wins over the backoff, and extends an episode.
    health.failed(
        status_error(429, retry_after=30), sent_at=11.6, now=11.6, policy=policy, rand=lambda: 0
    )
    assert health.resting(11.6) == pytest.approx(30)
    assert health.reason == "RateLimitError 429"
    error = health.resting_error("http://a", 21.6)
    assert isinstance(error, RateLimitError) and error.retry_after == pytest.approx(20)
    health.succeeded()
    assert health.streak == 0 and not health.rested and health.resting(21.6) > 0


def test_health_tolerates_allowed_fails() -> None:
    health = Health()
    for now in (1.0, 2.0):
        health.failed(status_error(503), sent_at=now, now=now, policy=POLICY, allowed_fails=2)
        assert health.resting(now) == 0 and not health.rested
    health.failed(status_error(503), sent_at=3.0, now=3.0, policy=POLICY, allowed_fails=2)
    assert health.resting(3.0) > 0 and health.rested


def test_choose_per_strategy() -> None:
    weights = SmoothWeights()
    a, b = View(position=0), View(position=1)
    assert choose("priority", [a, b], weights)[0] == a
    assert choose("priority", [View(position=0, resting=3.0), b], weights)[0] == b
    # Capacity: the learnt spare rate, a free slot first, then fewer in flight, then the turn.
    slow, fast = View(position=0, rate=10.0), View(position=1, rate=100.0, recent=50.0)
    assert choose("capacity", [slow, fast], weights)[0] == fast
    full = View(position=1, rate=100.0, in_flight=8, limit=8)
    assert choose("capacity", [slow, full], weights)[0] == slow
    busy, idle = View(position=0, in_flight=3), View(position=1, in_flight=1)
    assert choose("capacity", [busy, idle], weights)[0] == idle
    older, newer = View(position=0, turn=5), View(position=1, turn=2)
    assert choose("capacity", [older, newer], weights)[0] == newer
    # Failed this call, or probed right now: others first.
    assert choose("capacity", [View(position=0, avoided=True), b], weights)[0] == b
    assert choose("priority", [View(position=0, probing=True), b], weights)[0] == b
    # Everything rests: the shortest rest.
    assert choose(
        "capacity", [View(position=0, resting=2.0), View(position=1, resting=1.0)], weights
    ) == (None, 1.0)


def test_smooth_weights_follow_the_split_exactly() -> None:
    weights = SmoothWeights()
    views = [View(position=0, weight=3), View(position=1, weight=1)]
    picks = [choose("weighted", views, weights)[0] for _ in range(8)]
    assert [v.position for v in picks if v] == [0, 0, 1, 0, 0, 0, 1, 0]
    standby = [View(position=0, weight=1, resting=5.0), View(position=1, weight=0)]
    assert choose("weighted", standby, weights)[0] == standby[1]


def test_annotated_errors_say_what_was_tried_and_pickle() -> None:
    error = status_error(503, message="down", url="http://b/v1")
    tried = [("http://a/v1", "APIConnectionError"), ("http://b/v1", "ServerError 503")]
    annotate(error, tried, 2)
    assert tried_of(error) == tried
    assert error.attempts == 2
    assert "http://a/v1 (APIConnectionError)" in str(error)
    again = pickle.loads(pickle.dumps(error))
    assert type(again) is ServerError and tried_of(again) == tried and str(again) == str(error)
    plain = ConfigurationError("no")
    annotate(plain, [("http://a/v1", "ConfigurationError")], 0)
    assert "tried http://a/v1" in str(plain)


def test_bad_arguments_are_refused() -> None:
    with pytest.raises(ConfigurationError, match="at least one"):
        EndpointRouter([])
    with pytest.raises(ConfigurationError, match="list of endpoints"):
        EndpointRouter("routes.json")
    with pytest.raises(ConfigurationError, match="unknown strategy"):
        EndpointRouter([client("http://127.0.0.1:1/v1")], strategy="random")
    with pytest.raises(ConfigurationError, match="weights has 2 values"):
        EndpointRouter([client("http://127.0.0.1:1/v1")], weights=[1, 2])
    with pytest.raises(ConfigurationError, match="all 0"):
        EndpointRouter([client("http://127.0.0.1:1/v1")], strategy="weighted", weights=[0])
    with pytest.raises(ConfigurationError, match="an endpoint is"):
        EndpointRouter([42])  # type: ignore[list-item]


# -- strategies against emulators -------------------------------------------------------------


async def test_capacity_spreads_calls_and_follows_learnt_capacity(emulators: Emulators) -> None:
    a, b = emulators("a"), emulators("b")
    async with EndpointRouter([client(a), client(b)], retry=FAST) as router:
        urls = [(await router.chat(CHAT, max_tokens=4)).endpoint_url for _ in range(6)]
        assert Counter(urls) == {a.serverless_url: 3, b.serverless_url: 3}
        # A learnt a pace of 1 request/s and was just sent one: the spare capacity is B's.
        router.clients[0].budget.limiter.rate = 1.0
        router.clients[1].budget.limiter.rate = 100.0
        await router.chat(CHAT, max_tokens=4)
        urls = [(await router.chat(CHAT, max_tokens=4)).endpoint_url for _ in range(4)]
        assert set(urls) == {b.serverless_url}
        for row in router.snapshot():
            assert row["healthy"] and row["in_flight"] == 0


async def test_weighted_follows_the_weights(emulators: Emulators) -> None:
    a, b = emulators("a"), emulators("b")
    router = EndpointRouter([client(a), client(b)], strategy="weighted", weights=[3, 1])
    async with router:
        urls = [(await router.complete("Hi", max_tokens=2)).endpoint_url for _ in range(8)]
    assert Counter(urls) == {a.serverless_url: 6, b.serverless_url: 2}


async def test_priority_uses_the_first_healthy_endpoint(emulators: Emulators) -> None:
    down, a, b = emulators("503", Faults(error_503=1.0)), emulators("a"), emulators("b")
    async with EndpointRouter([client(a), client(b)], strategy="priority") as router:
        for _ in range(3):
            assert (await router.chat(CHAT, max_tokens=2)).endpoint_url == a.serverless_url
    assert b.stats.total_requests == 0
    async with EndpointRouter([client(down), client(a)], strategy="priority", retry=FAST) as router:
        reply = await router.chat(CHAT, max_tokens=2)
    assert reply.endpoint_url == a.serverless_url and reply.attempts == 2


# -- failover per error class ---------------------------------------------------------------


@pytest.mark.parametrize(
    "fault",
    [
        Faults(error_503=1.0),
        Faults(error_500=1.0),
        Faults(error_408=1.0),
        Faults(error_424=1.0),
        None,  # connection refused
    ],
    ids=["503", "500", "408", "424", "refused"],
)
async def test_failover_on_each_error_class(emulators: Emulators, fault: Faults | None) -> None:
    good = emulators("a")
    bad = None if fault is None else emulators(f"fault-{fault}", fault)
    bad_url = refused_url() if bad is None else bad.serverless_url
    clock = FakeClock()
    router = EndpointRouter(
        [client(bad_url), client(good)],
        strategy="priority",
        retry=FAST,
        clock=clock,
        sleep=clock.sleep,
    )
    async with router:
        reply = await router.chat(CHAT, max_tokens=3)
        assert reply.endpoint_url == good.serverless_url and reply.attempts == 2
        state = router.snapshot()[0]
        assert not state["healthy"] and state["resting_for"] > 0 and state["failures_in_a_row"] == 1
        # While it rests, calls go straight to the healthy endpoint.
        again = await router.chat(CHAT, max_tokens=3)
        assert again.attempts == 1 and again.endpoint_url == good.serverless_url
    assert clock.waits == []  # failing over waits for nothing


async def test_a_long_retry_after_fails_over_and_rests_the_endpoint(emulators: Emulators) -> None:
    good = emulators("a")
    limited = mock(answer(429, **{"retry-after": "120"}), "https://limited.test/v1")
    clock = FakeClock()
    router = EndpointRouter(
        [limited, client(good)], strategy="priority", clock=clock, sleep=clock.sleep
    )
    async with router:
        reply = await router.chat(CHAT, max_tokens=3)
        assert reply.endpoint_url == good.serverless_url
        assert router.snapshot()[0]["resting_for"] == pytest.approx(120)
    # Alone, nothing can take the call: the 429 is raised at once, not slept on.
    alone = mock(answer(429, **{"retry-after": "120"}), "https://limited.test/v1")
    async with EndpointRouter([alone], clock=clock, sleep=clock.sleep) as router:
        with pytest.raises(RateLimitError) as info:
            await router.chat(CHAT)
    assert info.value.retry_after == 120 and clock.waits == []
    assert tried_of(info.value) == [("https://limited.test/v1", "RateLimitError 429")]


async def test_a_short_retry_after_on_the_only_endpoint_is_waited(emulators: Emulators) -> None:
    calls: list[int] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(1)
        if len(calls) == 1:
            return httpx.Response(
                429, json={"error": "slow down"}, headers={"retry-after-ms": "250"}
            )
        return httpx.Response(
            200,
            json={
                "choices": [
                    {"message": {"role": "assistant", "content": "ok"}, "finish_reason": "stop"}
                ]
            },
        )

    clock = FakeClock()
    async with EndpointRouter(
        [mock(handler, "https://one.test/v1")], clock=clock, sleep=clock.sleep
    ) as router:
        reply = await router.chat(CHAT)
    assert reply.text == "ok" and reply.attempts == 2 and clock.waits == [pytest.approx(0.25)]


@pytest.mark.parametrize(
    ("status", "kind"), [(400, BadRequestError), (422, UnprocessableEntityError)]
)
async def test_a_request_error_is_not_retried_elsewhere(
    emulators: Emulators, status: int, kind: type[AzmlError]
) -> None:
    other = emulators("b")
    bad = mock(answer(status), "https://strict.test/v1")
    async with EndpointRouter([bad, client(other)], strategy="priority") as router:
        with pytest.raises(kind) as info:
            await router.chat(CHAT)
    assert other.stats.total_requests == 0
    assert tried_of(info.value) == [("https://strict.test/v1", f"{kind.__name__} {status}")]


@pytest.mark.parametrize("status", [401, 404])
async def test_endpoint_errors_fail_over(emulators: Emulators, status: int) -> None:
    good = emulators("a")
    bad = mock(answer(status), "https://wrong.test/v1")
    async with EndpointRouter([bad, client(good)], strategy="priority") as router:
        reply = await router.chat(CHAT, max_tokens=2)
    assert reply.endpoint_url == good.serverless_url


async def test_the_retry_budget_bounds_the_call_and_the_error_lists_the_tries(
    emulators: Emulators,
) -> None:
    urls = [refused_url(), emulators("503", Faults(error_503=1.0)).serverless_url, refused_url()]
    clock = FakeClock()
    router = EndpointRouter(
        [client(u) for u in urls],
        strategy="priority",
        max_retries=1,
        clock=clock,
        sleep=clock.sleep,
    )
    async with router:
        with pytest.raises(ServerError) as info:
            await router.chat(CHAT)
    error = info.value
    assert tried_of(error) == [(urls[0], "APIConnectionError"), (urls[1], "ServerError 503")]
    assert error.attempts == 2
    assert urls[0] in str(error) and urls[1] in str(error)
    assert tried_of(pickle.loads(pickle.dumps(error))) == tried_of(error)


async def test_the_deadline_stops_waiting_for_a_resting_endpoint(emulators: Emulators) -> None:
    down = emulators("503", Faults(error_503=1.0))
    clock = FakeClock()
    router = EndpointRouter(
        [client(down)],
        retry=RetryPolicy(max_retries=5, backoff_base=1.0),
        clock=clock,
        sleep=clock.sleep,
    )
    async with router:
        with pytest.raises(ServerError) as info:
            await router.chat(CHAT, deadline=0.4)  # the first rest is 0.5-1 s
    assert clock.waits == [] and len(tried_of(info.value)) == 1
    # With time enough, the same endpoint is tried again after its rest.
    async with EndpointRouter(
        [client(down)],
        retry=RetryPolicy(max_retries=2, backoff_base=1.0),
        clock=clock,
        sleep=clock.sleep,
    ) as router:
        with pytest.raises(ServerError) as info:
            await router.chat(CHAT)
    assert len(tried_of(info.value)) == 3 and len(clock.waits) == 2
    assert down.stats.by_status[503] == 4


async def test_cooldown_and_recovery(emulators: Emulators) -> None:
    port = free_port()
    gone = f"http://127.0.0.1:{port}/v1"
    good = emulators("b")
    clock = FakeClock()
    router = EndpointRouter(
        [client(gone), client(good)],
        strategy="priority",
        retry=FAST,
        clock=clock,
        sleep=clock.sleep,
    )
    async with router:
        assert (await router.chat(CHAT, max_tokens=2)).attempts == 2
        rest = router.snapshot()[0]["resting_for"]
        for _ in range(3):  # resting: not even tried
            reply = await router.chat(CHAT, max_tokens=2)
            assert reply.attempts == 1 and reply.endpoint_url == good.serverless_url
        # The endpoint comes back; once its rest is over one call probes it, and it is healthy.
        with EmulatorServer(EmulatorConfig(api_key=KEY), port=port):
            clock.now += rest + 0.01
            reply = await router.chat(CHAT, max_tokens=2)
            assert reply.endpoint_url == gone and reply.attempts == 1
            assert router.snapshot()[0]["healthy"]
            assert (await router.chat(CHAT, max_tokens=2)).endpoint_url == gone
    assert good.stats.total_requests == 4


async def test_a_failed_probe_rests_longer(emulators: Emulators) -> None:
    gone = refused_url()
    clock = FakeClock()
    policy = RetryPolicy(backoff_base=1.0, backoff_max=60.0)
    router = EndpointRouter(
        [client(gone), client(emulators("b"))],
        strategy="priority",
        retry=policy,
        clock=clock,
        sleep=clock.sleep,
        rand=lambda: 0.5,  # the jitter factor is 0.75 on every rest
    )
    async with router:
        await router.chat(CHAT, max_tokens=2)
        first = router.snapshot()[0]["resting_for"]
        assert first == 0.75  # the first step of the backoff: 1 s
        clock.now += first + 0.01
        assert (await router.chat(CHAT, max_tokens=2)).attempts == 2  # the probe failed
        state = router.snapshot()[0]
    # The failed probe is the second failure in a row: the backoff's next step, twice as long.
    assert state["failures_in_a_row"] == 2 and state["resting_for"] == 2 * first


# -- endpoints of different kinds ---------------------------------------------------------------


async def test_calls_go_only_to_endpoints_that_can_serve_them(emulators: Emulators) -> None:
    text = emulators("llama", family="llama")
    chat = emulators("b")
    dedicated = {"endpoint_url": text.score_url, "api_key": KEY, "formatter": "llama"}
    async with EndpointRouter([dedicated, client(chat)], strategy="priority") as router:
        for _ in range(3):
            assert (await router.chat(CHAT, max_tokens=2)).endpoint_url == chat.serverless_url
        done = await router.complete("Write a poem", max_new_tokens=4)
        assert done.endpoint_url == text.score_url and done.text
        with pytest.raises(ConfigurationError, match="no endpoint of this router can embed"):
            async with EndpointRouter([dedicated]) as alone:
                await alone.embed("a text")
        vectors = await router.embed(["a", "b"])
        assert len(vectors) == 2 and vectors.endpoint_url == chat.serverless_url
        assert await router.invoke({"input_data": {"input_string": ["Hi"]}}) is not None


async def test_the_router_closes_only_the_clients_it_built(emulators: Emulators) -> None:
    given = EndpointClient(**client(emulators("a")))
    router = EndpointRouter([given, client(emulators("b"))])
    async with router:
        await router.chat(CHAT, max_tokens=2)
    assert not given.is_closed and router.clients[1].is_closed
    with pytest.raises(AzmlError, match="router is closed"):
        await router.chat(CHAT)
    await given.aclose()


# -- streams -----------------------------------------------------------------------------------


async def test_a_stream_fails_over_before_its_first_chunk(emulators: Emulators) -> None:
    down, good = emulators("503", Faults(error_503=1.0)), emulators("a")

    def empty(request: httpx.Request) -> httpx.Response:  # 200, then the stream ends at once
        return httpx.Response(200, content=b"", headers={"content-type": "text/event-stream"})

    silent = mock(empty, "https://silent.test/v1")
    clients = [client(down), silent, client(good)]
    router = EndpointRouter(clients, strategy="priority", retry=FAST)
    async with router, router.stream(CHAT, max_tokens=8) as stream:
        chunks = [chunk.text async for chunk in stream]
    assert "".join(chunks) == stream.text and stream.text
    assert stream.endpoint_url == good.serverless_url
    assert stream.tried == [
        (down.serverless_url, "ServerError 503"),
        ("https://silent.test/v1", "StreamInterruptedError"),
    ]
    assert stream.attempts == 3 and stream.finish_reason is not None
    assert stream.id is not None and stream.id.startswith("chatcmpl-")  # the emulator's chunks
    assert stream.model is not None


async def test_a_stream_cut_after_its_first_chunk_is_not_failed_over(emulators: Emulators) -> None:
    cut, good = emulators("cut", Faults(stream_cut=1.0)), emulators("b")
    router = EndpointRouter([client(cut), client(good)], strategy="priority")
    got: list[str] = []
    async with router:
        with pytest.raises(StreamInterruptedError) as info:
            async with router.stream("Tell me a long story", max_tokens=40) as stream:
                async for chunk in stream:
                    got.append(chunk.text)
    assert got and good.stats.total_requests == 0
    assert tried_of(info.value) == [(cut.serverless_url, "StreamInterruptedError")]


async def test_a_stream_without_any_endpoint_raises_the_last_error(emulators: Emulators) -> None:
    router = EndpointRouter([client(refused_url())], max_retries=0)
    async with router:
        with pytest.raises(APIConnectionError) as info:
            async with router.stream(CHAT):
                pass
    assert len(tried_of(info.value)) == 1
