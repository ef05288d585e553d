"""The error tree: pickling (also across processes), status mapping, and secret redaction."""

from __future__ import annotations

import builtins
import copy
import multiprocessing
import pickle
import sys
import traceback
from concurrent.futures import ProcessPoolExecutor
from typing import Any

import pytest

from azml_client import _exceptions
from azml_client._exceptions import (
    APIConnectionError,
    APIStatusError,
    APITimeoutError,
    AuthenticationError,
    AzmlError,
    BadRequestError,
    ClientClosedError,
    ConfigurationError,
    CredentialError,
    EmptyResponseError,
    ModelError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
    RequestTimeoutError,
    ResponseFormatError,
    ServerError,
    StreamInterruptedError,
    StructuredOutputError,
    UnprocessableEntityError,
    reported_error,
    status_error,
)
from azml_client._redact import REDACTED, Redactor, scrub
from azml_client._types import Usage

URL = "https://my-endpoint.eastus.inference.ml.azure.com/score"
SECRET = "canary-9f3b2a7e-SECRET-do-not-print"
TOKEN = "eyJ0eXAiOiJKV1QiLCJhbGciOiJSUzI1NiJ9.eyJhdWQiOiJtbCJ9.c2lnbmF0dXJl"


def _status(cls: type[APIStatusError], status: int, **extra: Any) -> APIStatusError:
    """A status error as the sender builds it, checked to be of the expected class."""
    exc = status_error(
        status,
        body='{"message": "upstream said no"}',
        message="upstream said no",
        request_id="8c2a1d4e-rid",
        retry_after=1.5,
        headers={"x-ms-request-id": "8c2a1d4e-rid", "content-type": "application/json"},
        url=URL,
        client_request_id="client-42",
        attempts=3,
        **extra,
    )
    assert type(exc) is cls
    return exc


def add_note(exc: BaseException, note: str) -> None:
    """``exc.add_note(note)``, which mypy (checking against 3.10) does not know."""
    if sys.version_info >= (3, 11):
        exc.add_note(note)
    else:
        vars(exc).setdefault("__notes__", []).append(note)


def exception_group(message: str, members: list[BaseException]) -> BaseException:
    """A 3.11+ ``ExceptionGroup`` (ruff and mypy check against 3.10, which lacks the name)."""
    group_type: Any = vars(builtins)["ExceptionGroup"]
    group: BaseException = group_type(message, members)
    return group


def _with_note(exc: AzmlError) -> AzmlError:
    add_note(exc, "while scoring row 17 of input.jsonl")
    return exc


#: One realistic instance of every exception class the module exports.
EXAMPLES: dict[str, AzmlError] = {
    "AzmlError": AzmlError("something azml-specific went wrong"),
    "ConfigurationError": ConfigurationError("endpoint_url must use https, got 'ftp://x'"),
    "ClientClosedError": ClientClosedError(),
    "CredentialError": CredentialError(
        "DefaultAzureCredential.get_token('https://ml.azure.com/.default') failed",
        scope="https://ml.azure.com/.default",
        credential="DefaultAzureCredential",
    ),
    "APIConnectionError": APIConnectionError(
        "could not reach the endpoint (ConnectError: refused)",
        url=URL,
        client_request_id="client-42",
        attempts=4,
    ),
    "APITimeoutError": APITimeoutError("no answer within 30s", url=URL, attempts=2),
    "StreamInterruptedError": _with_note(
        StreamInterruptedError("the stream ended before [DONE]", url=URL, client_request_id="c")
    ),
    "APIStatusError": _status(APIStatusError, 409),
    "BadRequestError": _status(BadRequestError, 400),
    "AuthenticationError": _status(AuthenticationError, 401),
    "PermissionDeniedError": _status(PermissionDeniedError, 403),
    "NotFoundError": _status(NotFoundError, 404),
    "RequestTimeoutError": _status(RequestTimeoutError, 408),
    "UnprocessableEntityError": _status(UnprocessableEntityError, 422),
    "ModelError": _status(ModelError, 424, model_status_code=500, model_reason="CUDA OOM"),
    "RateLimitError": _status(RateLimitError, 429),
    "ServerError": _status(ServerError, 503),
    "ResponseFormatError": ResponseFormatError(
        "no 'choices' in the answer",
        formatter="openai",
        api_type="serverless",
        body='{"weird": 1}',
        request_id="rid-7",
    ),
    "EmptyResponseError": EmptyResponseError(
        "HTTP 200 with an empty body", formatter="llama", api_type="dedicated", request_id="r"
    ),
    "StructuredOutputError": StructuredOutputError(
        "the answer does not fit Joke: punchline: Field required",
        text='{"setup": "a"}',
        finish_reason="stop",
        request_id="r",
        usage=Usage(prompt_tokens=12, completion_tokens=5, total_tokens=17),
    ),
}


def _exception_names() -> set[str]:
    return {
        name
        for name in _exceptions.__all__
        if isinstance(getattr(_exceptions, name), type)
        and issubclass(getattr(_exceptions, name), BaseException)
    }


def assert_same_error(got: BaseException, want: BaseException) -> None:
    assert type(got) is type(want)
    assert got.args == want.args
    assert vars(got) == vars(want)
    assert str(got) == str(want)
    assert repr(got) == repr(want)


def test_every_exported_exception_has_an_example() -> None:
    assert set(EXAMPLES) == _exception_names()
    assert all(type(exc).__name__ == name for name, exc in EXAMPLES.items())


@pytest.mark.parametrize("name", sorted(EXAMPLES))
def test_pickle_round_trip_keeps_type_fields_and_text(name: str) -> None:
    exc = EXAMPLES[name]
    for protocol in range(2, pickle.HIGHEST_PROTOCOL + 1):
        assert_same_error(pickle.loads(pickle.dumps(exc, protocol)), exc)
    assert_same_error(copy.copy(exc), exc)
    assert_same_error(copy.deepcopy(exc), exc)


def test_unpickling_does_not_call_init() -> None:
    # ClientClosedError's __init__ fills in a default message: a custom one must survive.
    exc = ClientClosedError("closed by the batch runner")
    assert str(pickle.loads(pickle.dumps(exc))) == "closed by the batch runner"


def test_subclasses_defined_elsewhere_pickle_too() -> None:
    exc = _LocalError("detail", extra=7)
    assert_same_error(pickle.loads(pickle.dumps(exc)), exc)


def test_a_structured_output_errors_usage_survives_pickling_with_its_extra_fields() -> None:
    usage = Usage(prompt_tokens=3, completion_tokens=2, total_tokens=5, cached_tokens=1)
    exc = StructuredOutputError("not JSON", text="Sure!", usage=usage)
    for protocol in range(2, pickle.HIGHEST_PROTOCOL + 1):
        got = pickle.loads(pickle.dumps(exc, protocol))
        assert_same_error(got, exc)
        assert isinstance(got.usage, Usage) and got.usage.model_extra == {"cached_tokens": 1}
    assert StructuredOutputError("not JSON").usage is None


class _LocalError(AzmlError):
    def __init__(self, message: str, *, extra: int) -> None:
        super().__init__(message)
        self.extra = extra


def check_and_raise_back(exc: AzmlError, name: str) -> None:
    """Runs in a worker process: the error arrived intact; raise it back to the parent."""
    assert_same_error(exc, EXAMPLES[name])
    raise exc


@pytest.mark.parametrize("name", ["ModelError", "ResponseFormatError", "CredentialError"])
def test_errors_cross_a_process_pool(name: str) -> None:
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=1, mp_context=context) as pool:
        future = pool.submit(check_and_raise_back, EXAMPLES[name], name)
        with pytest.raises(type(EXAMPLES[name])) as raised:
            future.result(timeout=60)
    assert_same_error(raised.value, EXAMPLES[name])


# status_error / reported_error


@pytest.mark.parametrize("status", [0, 99, 600, 799, -1])
def test_status_outside_http_range_is_a_plain_status_error(status: int) -> None:
    exc = status_error(status, body="?", message="odd", url=URL)
    assert type(exc) is APIStatusError
    assert exc.status_code == status
    assert f"unexpected status {status}" in str(exc)
    assert exc.body == "?" and exc.url == URL


@pytest.mark.parametrize("status", ["abc", None, "", 1.5, True])
def test_status_that_is_not_an_integer_does_not_crash(status: Any) -> None:
    exc = status_error(status, message="odd")
    assert type(exc) is APIStatusError
    assert exc.status_code == 0
    assert repr(status) in str(exc)


@pytest.mark.parametrize(
    ("status", "cls"),
    [("503", ServerError), (429.0, RateLimitError), (" 424 ", ModelError), (302, APIStatusError)],
)
def test_status_given_as_text_or_float_still_maps(status: Any, cls: type[APIStatusError]) -> None:
    exc = status_error(status)
    assert type(exc) is cls
    assert exc.status_code == int(float(status))


def test_reported_error_ignores_a_code_that_is_not_a_status() -> None:
    assert type(reported_error({"code": "²", "message": "x"}, context="c")) is ServerError
    assert type(reported_error({"status": "429", "message": "x"}, context="c")) is RateLimitError
    assert type(reported_error({"code": 600, "message": "x"}, context="c")) is ServerError


# Redactor


def test_redactor_replaces_every_secret_in_text_and_bytes() -> None:
    redactor = Redactor([SECRET])
    redactor.add(TOKEN)
    text = f"echo: Bearer {SECRET} and again {SECRET}; token={TOKEN}"
    assert redactor.text(text) == (
        f"echo: Bearer {REDACTED} and again {REDACTED}; token={REDACTED}"
    )
    assert redactor.bytes(text.encode()) == redactor.text(text).encode()
    assert redactor.found(text) and not redactor.found("nothing here")


def test_redactor_catches_json_and_url_escaped_echoes() -> None:
    secret = "abc/def+ghi=="
    redactor = Redactor([secret])
    assert redactor.text('{"key": "abc\\/def+ghi=="}') == f'{{"key": "{REDACTED}"}}'
    assert redactor.text("?key=abc%2Fdef%2Bghi%3D%3D") == f"?key={REDACTED}"


def test_longer_secret_sharing_a_prefix_is_hidden_whole() -> None:
    redactor = Redactor([SECRET[:12], SECRET])
    assert redactor.text(f"x{SECRET}x") == f"x{REDACTED}x"


def test_redactor_blanks_sensitive_header_names_and_redacts_other_values() -> None:
    redactor = Redactor([SECRET])
    headers = {
        "Authorization": "Bearer short",
        "Proxy-Authorization": "Basic xyz",
        "api-key": "k",
        "X-Api-Key": "k",
        "Ocp-Apim-Subscription-Key": "k",
        "Cookie": "session=1",
        "set-cookie": "a=b",
        "x-echo": f"you sent {SECRET}",
        "content-type": "application/json",
    }
    out = redactor.headers(headers)
    assert out is not headers
    assert [out[name] for name in list(headers)[:7]] == [REDACTED] * 7
    assert out["x-echo"] == f"you sent {REDACTED}"
    assert out["content-type"] == "application/json"
    assert headers["x-echo"] == f"you sent {SECRET}"  # the input is not modified


def test_short_and_empty_secrets_are_ignored() -> None:
    redactor = Redactor(["", "abc", "1234567"])
    redactor.add("")
    redactor.add("short")
    assert not redactor
    assert redactor.text("abc 1234567 short") == "abc 1234567 short"
    redactor.add("12345678")
    assert redactor.text("x 12345678 y") == f"x {REDACTED} y"


def test_nothing_to_redact_returns_the_same_object() -> None:
    text = "an error body with no secret in it"
    data = text.encode()
    for redactor in (Redactor(), Redactor([SECRET])):
        assert redactor.text(text) is text
        assert redactor.bytes(data) is data
        assert redactor.headers({"a": text}) == {"a": text}


def test_a_secret_that_is_not_a_str_is_refused() -> None:
    # Silently ignoring a SecretStr (or bytes) would protect nothing.
    with pytest.raises(TypeError, match="get_secret_value"):
        Redactor([SECRET.encode()])  # type: ignore[list-item]
    with pytest.raises(TypeError):
        Redactor().add(None)  # type: ignore[arg-type]


def test_redactor_repr_shows_no_secret() -> None:
    redactor = Redactor([SECRET])
    redactor.add(TOKEN)
    assert repr(redactor) == "Redactor(<2 secrets>)"


def test_added_tokens_are_bounded_but_the_key_is_kept() -> None:
    redactor = Redactor([SECRET])
    tokens = [f"token-number-{i:04d}" for i in range(100)]
    for token in tokens:
        redactor.add(token)
    assert redactor.text(SECRET) == REDACTED
    assert redactor.text(tokens[-1]) == REDACTED
    assert redactor.text(tokens[0]) == tokens[0]  # long expired, no longer looked for


# scrub


def _status_error_echoing(secret: str) -> APIStatusError:
    return status_error(
        401,
        body=f'{{"error": "bad key", "echo": "Bearer {secret}"}}',
        message=f"invalid key Bearer {secret}",
        headers={"x-echo-authorization": f"Bearer {secret}", "www-authenticate": "Bearer"},
        url=f"{URL}?code={secret}",
        request_id="rid-1",
    )


def test_scrub_redacts_every_field_of_our_errors() -> None:
    exc = _status_error_echoing(SECRET)
    add_note(exc, f"sent with key {SECRET}")
    assert scrub(exc, Redactor([SECRET])) is exc
    for text in (str(exc), repr(exc), repr(vars(exc)), repr(exc.args)):
        assert SECRET not in text
    assert SECRET.encode() not in pickle.dumps(exc)
    assert REDACTED in exc.body and REDACTED in exc.message
    assert exc.headers == {
        "x-echo-authorization": f"Bearer {REDACTED}",
        "www-authenticate": "Bearer",
    }
    assert str(exc).startswith(f"HTTP 401: invalid key Bearer {REDACTED} (check the key")


def test_scrub_redacts_response_format_errors() -> None:
    exc = ResponseFormatError(f"got {SECRET}", formatter="llama", body=f"[{SECRET}]")
    scrub(exc, Redactor([SECRET]))
    assert str(exc) == f"formatter 'llama': got {REDACTED} | body: [{REDACTED}]"


def _raise_chain() -> APIConnectionError:
    """Ours <- (cause) ours with the key in its body <- (cause) a proxy's error echoing the key,
    linked by real ``raise ... from`` as a driver would link them."""
    try:
        try:
            raise RuntimeError(f"proxy said: Authorization: Bearer {SECRET}")
        except RuntimeError as leaky:
            raise _status_error_echoing(SECRET) from leaky
    except APIStatusError as inner:
        outer = APIConnectionError("retries exhausted", url=URL)
        outer.__cause__ = inner
        return outer


def _chain_text(exc: BaseException) -> str:
    return "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))


def test_scrub_cuts_the_chain_above_a_foreign_exception_that_shows_a_secret() -> None:
    outer = _raise_chain()
    inner = outer.__cause__
    assert isinstance(inner, APIStatusError)
    assert isinstance(inner.__cause__, RuntimeError)
    assert SECRET in _chain_text(outer)

    scrub(outer, Redactor([SECRET]))

    assert outer.__cause__ is inner  # our own errors stay linked, redacted
    assert inner.__cause__ is None and inner.__context__ is None
    assert inner.__suppress_context__
    assert REDACTED in inner.body
    text = _chain_text(outer)
    assert SECRET not in text
    assert "retries exhausted" in text and REDACTED in text


def test_scrub_keeps_foreign_exceptions_without_secrets() -> None:
    try:
        try:
            raise ConnectionResetError("peer reset")
        except ConnectionResetError as exc:
            raise APIConnectionError("connection lost", url=URL) from exc
    except APIConnectionError as err:
        error = err
    cause = error.__cause__
    scrub(error, Redactor([SECRET]))
    assert error.__cause__ is cause
    assert "peer reset" in _chain_text(error)


def test_scrub_survives_cycles_and_broken_str() -> None:
    class Unprintable(Exception):
        def __str__(self) -> str:
            raise ValueError("no")

    a = APIConnectionError(f"a {SECRET}")
    b = APIConnectionError("b")
    a.__context__ = b
    b.__context__ = a
    b.__cause__ = Unprintable()
    scrub(a, Redactor([SECRET]))
    assert SECRET not in str(a)
    assert isinstance(b.__cause__, Unprintable)


def test_scrub_without_secrets_touches_nothing() -> None:
    outer = _raise_chain()
    before = vars(outer.__cause__).copy() if outer.__cause__ else {}
    scrub(outer, Redactor())
    assert outer.__cause__ is not None
    assert vars(outer.__cause__) == before


@pytest.mark.skipif(sys.version_info < (3, 11), reason="ExceptionGroup is new in 3.11")
def test_scrub_walks_exception_groups() -> None:
    ours = _status_error_echoing(SECRET)
    group = exception_group("batch failed", [ours, ValueError("fine")])
    assert SECRET in repr(group)  # a group's repr shows its members
    wrapper = APIConnectionError("run failed")
    wrapper.__cause__ = group
    scrub(wrapper, Redactor([SECRET]))
    assert wrapper.__cause__ is group  # no foreign member leaks: the group stays
    assert REDACTED in ours.body
    assert SECRET not in _chain_text(wrapper)

    wrapper.__cause__ = exception_group("batch failed", [RuntimeError(f"echo {SECRET}")])
    scrub(wrapper, Redactor([SECRET]))
    assert wrapper.__cause__ is None and wrapper.__suppress_context__
