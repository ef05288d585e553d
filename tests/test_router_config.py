"""Routes files (``load_router``) and the command line's ``--routes``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from azml_client import ConfigurationError, EndpointClient, RetryPolicy
from azml_client._router import EndpointRouter, SyncEndpointRouter, load_router, read_routes
from azml_client.cli import main

from .test_router import CHAT, KEY, Emulators, emulators, refused_url

__all__ = ["emulators"]  # the module-scoped fixture, shared with test_router.py

pytestmark = pytest.mark.integration


@pytest.fixture
def routes(
    tmp_path: Path, emulators: Emulators, monkeypatch: pytest.MonkeyPatch
) -> tuple[Path, list[str]]:
    """A routes file: a saved config (its key in ROUTE_KEY_A), and inline settings."""
    a, b = emulators("a"), emulators("b")
    monkeypatch.setenv("ROUTE_KEY_A", KEY)
    monkeypatch.setenv("ROUTE_KEY_B", KEY)
    saved = EndpointClient(
        endpoint_url=a.serverless_url, api_key=KEY, api_type="serverless", api_key_env="ROUTE_KEY_A"
    )
    saved.save(tmp_path / "east.json")
    data = {
        "azml_routes": 1,
        "strategy": "weighted",
        "max_retries": 3,
        "retry": {"backoff_base": 0.01, "backoff_max": 0.05},
        "endpoints": [
            {"config": "east.json", "weight": 3},
            {"endpoint_url": b.serverless_url, "api_key_env": "ROUTE_KEY_B", "weight": 1},
        ],
    }
    path = tmp_path / "routes.json"
    path.write_text(json.dumps(data))
    return path, [a.serverless_url, b.serverless_url]


async def test_load_router_reads_a_routes_file(routes: tuple[Path, list[str]]) -> None:
    path, urls = routes
    async with load_router(path) as router:
        assert router.strategy == "weighted"
        assert [ep.weight for ep in router.endpoints] == [3.0, 1.0]
        assert [c.settings.endpoint_url for c in router.clients] == urls
        assert router.retry_policy.max_retries == 3 and router.retry_policy.backoff_base == 0.01
        replies = [await router.chat(CHAT, max_tokens=2) for _ in range(4)]
        assert [r.endpoint_url for r in replies].count(urls[0]) == 3
    async with load_router(path, strategy="priority") as router:
        assert router.strategy == "priority"


def test_sync_router_from_routes(routes: tuple[Path, list[str]]) -> None:
    path, urls = routes
    with SyncEndpointRouter.from_routes(path, strategy="priority") as router:
        assert router.chat(CHAT, max_tokens=2).endpoint_url == urls[0]


def test_a_bare_list_is_a_routes_file(tmp_path: Path, emulators: Emulators) -> None:
    path = tmp_path / "routes.json"
    path.write_text(json.dumps([{"endpoint_url": emulators("a").serverless_url}]))
    endpoints, options = read_routes(path)
    assert endpoints == [{"endpoint_url": emulators("a").serverless_url}]
    assert options == {"weights": [1.0]}


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("not json", "cannot read the routes file"),
        ('{"endpoints": []}', "non-empty list"),
        ('{"azml_routes": 9, "endpoints": ["x.json"]}', "not an azml routes file"),
        ('{"endpoints": [{"endpoint_url": "https://a/v1", "api_key": "k"}]}', "holds an API key"),
        ('{"endpoints": [{"endpoint_url": "https://a/v1", "weight": -1}]}', "weight must be"),
        ('{"endpoints": [42]}', "an endpoint is a config path"),
        ('{"endpoints": ["missing.json"]}', "no client config"),
        ('{"endpoints": ["x.json"], "colour": "blue"}', "unknown routes settings colour"),
        ('{"endpoints": ["x.json"], "retry": {"tries": 3}}', "retry:"),
    ],
)
def test_bad_routes_files_are_refused(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "routes.json"
    path.write_text(content)
    with pytest.raises(ConfigurationError, match=message):
        read_routes(path)
    with pytest.raises(ConfigurationError, match="no routes file"):
        load_router(tmp_path / "absent.json")


def test_routes_options_reach_the_router(tmp_path: Path) -> None:
    path = tmp_path / "routes.json"
    url = refused_url()
    path.write_text(
        json.dumps({"endpoints": [{"endpoint_url": url}], "deadline": 5, "allowed_fails": 2})
    )
    router = load_router(path)
    assert isinstance(router, EndpointRouter) and router.endpoints[0].url == url
    assert router._deadline == 5 and router._allowed_fails == 2
    assert load_router(path, retry=RetryPolicy(max_retries=7)).retry_policy.max_retries == 7


# -- the command line ------------------------------------------------------------------------------


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_chat_and_complete_with_routes(
    routes: tuple[Path, list[str]], capsys: pytest.CaptureFixture[str]
) -> None:
    path, urls = routes
    code, out, err = run(
        capsys, "chat", "Hi", "--routes", str(path), "--json", "--param", "max_tokens=3"
    )
    assert code == 0, err
    data = json.loads(out)
    assert data["text"] and data["endpoint_url"] in urls
    code, out, err = run(
        capsys, "complete", "Once", "--routes", str(path), "--param", "max_tokens=3"
    )
    assert code == 0 and out.strip(), err
    code, out, err = run(
        capsys, "chat", "Hi", "--routes", str(path), "--stream", "--max-retries", "1"
    )
    assert code == 0 and out.strip(), err
    code, out, err = run(capsys, "embed", "a", "b", "c", "--routes", str(path), "--batch-size", "2")
    assert code == 0 and len(out.splitlines()) == 3, err


def test_batch_with_routes(
    routes: tuple[Path, list[str]], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path, urls = routes
    source = tmp_path / "in.jsonl"
    rows: list[dict[str, Any]] = [
        {"id": i, "prompt": f"Prompt {i}", "params": {"max_tokens": 2}} for i in range(40)
    ]
    source.write_text("".join(json.dumps(row) + "\n" for row in rows))
    output = tmp_path / "out.jsonl"
    code, out, err = run(
        capsys, "batch", str(source), "-o", str(output), "--routes", str(path), "--no-progress"
    )
    assert code == 0, err
    lines = [json.loads(line) for line in output.read_text().splitlines()]
    assert sorted(line["id"] for line in lines) == list(range(40))
    assert all(line["ok"] for line in lines)
    assert "endpoints" in err and all(url in err for url in urls)
    output.unlink()
    code, out, err = run(
        capsys,
        "batch",
        str(source),
        "-o",
        str(output),
        "--routes",
        str(path),
        "--no-progress",
        "--json",
    )
    assert code == 0, err
    summary = json.loads(out)
    assert summary["ok"] == 40
    assert [e["endpoint_url"] for e in summary["endpoints"]] == urls
    assert sum(e["succeeded"] for e in summary["endpoints"]) == 40


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--endpoint-url", "https://a/v1"], "--endpoint-url names one endpoint"),
        (["--emulator"], "--emulator names one endpoint"),
        (["--formatter", "llama"], "--formatter names one endpoint"),
    ],
)
def test_routes_refuses_flags_of_one_endpoint(
    routes: tuple[Path, list[str]],
    capsys: pytest.CaptureFixture[str],
    extra: list[str],
    message: str,
) -> None:
    path, _ = routes
    code, _, err = run(capsys, "chat", "Hi", "--routes", str(path), *extra)
    assert code == 2 and message in err


def test_routes_refused_for_info_and_embeddings_without_a_route(
    routes: tuple[Path, list[str]],
    tmp_path: Path,
    emulators: Emulators,
    capsys: pytest.CaptureFixture[str],
) -> None:
    path, _ = routes
    code, _, err = run(capsys, "info", "--routes", str(path))
    assert code == 2 and "azml info asks one endpoint" in err
    text_only = tmp_path / "text.json"
    text_only.write_text(
        json.dumps(
            [
                {
                    "endpoint_url": emulators("llama", family="llama").score_url,
                    "api_key_env": "ROUTE_KEY_A",
                }
            ]
        )
    )
    code, _, err = run(capsys, "embed", "x", "--routes", str(text_only))
    assert code == 2 and "has an embeddings route" in err
