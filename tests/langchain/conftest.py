"""Fixtures of the LangChain integration tests: emulators started once per session.

Nothing here imports LangChain: each test module skips itself (``pytest.importorskip``) when
langchain-core or langchain-tests is not installed (CI installs them with the ``dev`` extra).
"""

from __future__ import annotations

import json
import threading
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import ModuleType
from typing import Any

import httpx
import pytest

from azml_client.emulator import Deployment, EmulatorConfig, EmulatorServer
from azml_client.emulator._runner import stop_all

#: Key and model name of the emulator behind the OpenAI-style routes.
API_KEY = "langchain-emulator-key"
API_MODEL = "emu-model"
#: Key of the emulators behind /score.
SCORE_KEY = "langchain-score-key"


@dataclass
class Emulators:
    """The running emulators: ``api`` (serverless, models, openai_v1 routes) and one per
    ``/score`` family that a test reaches without naming a deployment."""

    api: EmulatorServer
    score: dict[str, EmulatorServer]


#: Deployments of the ``llama`` /score emulator that tests pick with ``deployment_name``.
SCORE_DEPLOYMENTS = (
    Deployment("llama", "llama", traffic=100),
    Deployment("llama-records", "llama", traffic=0, response_style="records"),
    Deployment("llama-chat", "llama-chat", traffic=0),
    Deployment("llama-chat-output", "llama-chat", traffic=0, response_style="output"),
    Deployment("gpt2-records", "gpt2", traffic=0, response_style="records"),
    Deployment("dolly", "dolly", traffic=0),
    Deployment("vllm", "vllm", traffic=0),
    Deployment("tgi", "tgi", traffic=0),
    # The deployment of the docs' save-and-load example.
    Deployment("databricks-dolly-v2-12b-4", "dolly", traffic=0),
)


@pytest.fixture(scope="session")
def emulators() -> Iterator[Emulators]:
    """Every emulator these tests use, started once (their shutdowns overlap at the end)."""
    servers: list[EmulatorServer] = []

    def start(config: EmulatorConfig) -> EmulatorServer:
        server = EmulatorServer(config)
        servers.append(server)
        return server.start()

    try:
        api = start(EmulatorConfig(api_key=API_KEY, model_name=API_MODEL, seed=11))
        score = {
            "llama": start(
                EmulatorConfig(api_key=SCORE_KEY, deployments=SCORE_DEPLOYMENTS, seed=11)
            ),
            "dolly": start(EmulatorConfig(api_key=SCORE_KEY, family="dolly", seed=11)),
            "llama-chat": start(EmulatorConfig(api_key=SCORE_KEY, family="llama-chat", seed=11)),
        }
        yield Emulators(api=api, score=score)
    finally:
        stop_all(servers)


@pytest.fixture(scope="session")
def api_emulator(emulators: Emulators) -> EmulatorServer:
    return emulators.api


@pytest.fixture(scope="session")
def score_emulator(emulators: Emulators) -> EmulatorServer:
    """The /score emulator with a ``llama`` default and the ``SCORE_DEPLOYMENTS``."""
    return emulators.score["llama"]


@pytest.fixture
def benchmark(benchmark: Any) -> Any:
    """pytest-benchmark's fixture, disabled here: ``test_init_time`` of the standard suites
    runs its function once (what ``--benchmark-disable`` does) instead of timing it for a
    second or more; speed is measured by ``benchmarks/``, not by this suite."""
    benchmark.disabled = True
    return benchmark


def import_seed(module: str) -> ModuleType:
    """A ``langchain_community`` module (skips the test without the package). Importing it
    the first time warns that langchain-community is being sunset; that warning is LangChain's
    news, not this suite's, so it is silenced for the import alone."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        found: ModuleType = pytest.importorskip(module)
    return found


@pytest.fixture(scope="session")
def seed_llms() -> ModuleType:
    """``langchain_community.llms.azureml_endpoint``: "the seed" (its formatters)."""
    return import_seed("langchain_community.llms.azureml_endpoint")


@pytest.fixture(scope="session")
def seed_chat() -> ModuleType:
    """``langchain_community.chat_models.azureml_endpoint``."""
    return import_seed("langchain_community.chat_models.azureml_endpoint")


@dataclass
class SummaryServer:
    """A Hugging Face summarization deployment (answers ``[{"summary_text": ...}]``) that
    records each request; the emulator has no such answer shape yet."""

    url: str
    key: str
    requests: list[tuple[dict[str, str], Any]]


@pytest.fixture(scope="session")
def summary_server() -> Iterator[SummaryServer]:
    requests: list[tuple[dict[str, str], Any]] = []
    key = "bart-key"

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            size = int(self.headers.get("content-length", "0"))
            body = json.loads(self.rfile.read(size))
            requests.append((dict(self.headers), body))
            answer: Any
            if self.headers.get("authorization") != f"Bearer {key}":
                status, answer = 401, {"message": "unauthorized"}
            else:
                words = str(body["inputs"][0]).split()
                status, answer = 200, [{"summary_text": " ".join(words[:12])}]
            data = json.dumps(answer).encode()
            self.send_response(status)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield SummaryServer(f"http://127.0.0.1:{server.server_port}/score", key, requests)
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def openai_answer(body: dict[str, Any], *, text: str = "Hello there.") -> dict[str, Any]:
    """A chat or text completion answer in the OpenAI shape."""
    usage = {"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7}
    if "messages" in body:
        choice: dict[str, Any] = {
            "index": 0,
            "message": {"role": "assistant", "content": text},
            "finish_reason": "stop",
        }
    else:
        choice = {"index": 0, "text": text, "finish_reason": "stop"}
    return {"id": "cmpl-1", "model": "recorded-model", "choices": [choice], "usage": usage}


class Recorder:
    """An ``httpx.MockTransport`` that keeps every request body and answers with
    ``answer(body)`` (an OpenAI-shaped answer by default; ``[{"0": ...}]`` on /score)."""

    def __init__(self, answer: Callable[[dict[str, Any]], Any] | None = None) -> None:
        self.bodies: list[dict[str, Any]] = []
        self.requests: list[httpx.Request] = []
        self._answer = answer
        self.transport = httpx.MockTransport(self._handle)

    def _handle(self, request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        self.requests.append(request)
        self.bodies.append(body)
        if self._answer is not None:
            return httpx.Response(200, json=self._answer(body))
        if request.url.path.endswith("/score"):
            return httpx.Response(200, json=[{"0": "Hello there."}])
        return httpx.Response(200, json=openai_answer(body))

    @property
    def last(self) -> dict[str, Any]:
        return self.bodies[-1]


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


#: URLs for tests that answer through a :class:`Recorder` (nothing is resolved or sent).
RECORDED_SERVERLESS = "https://llama-serverless.eastus2.inference.ai.azure.com/v1"
RECORDED_SCORE = "https://my-endpoint.eastus.inference.ml.azure.com/score"
