"""The emulator as a plain ASGI 3 application: the front door, the router and the model containers.

A request goes through what Azure puts in front of a model, in this order: route and method,
key (401), ``api-version`` on ``/models`` (400), token-bucket rate limit (429), deployment
routing (404), pending-request limit (429), latency and timeout (408), injected errors
(503/500/424/408), then the model container itself, whose non-200 answers the front door wraps
in a 424 (wire-formats.md 4.1). ``/info`` and ``GET /openai/v1/models`` are answered at the
front door, before the rate limit. Routes and their APIs are in ``_routes``; on ``/openai/v1``
every error, injected ones included, has OpenAI's shape (``_errors``).
"""

from __future__ import annotations

import re
import secrets
import uuid
from dataclasses import dataclass
from http import HTTPStatus

import anyio

from azml_client.emulator._config import Deployment, EmulatorConfig
from azml_client.emulator._errors import (
    Api,
    front_door_error,
    platform_error,
    validation_error,
)
from azml_client.emulator._families import ContainerReply, fms_error_in_200, score
from azml_client.emulator._faults import FaultInjector, retry_after_headers
from azml_client.emulator._http import (
    Receive,
    Request,
    Response,
    Scope,
    Send,
    StreamCut,
    StreamResponse,
    json_response,
    read_request,
    send_response,
    text_response,
)
from azml_client.emulator._routes import (
    ROUTES,
    Route,
    api_of_path,
    api_version_problem,
    authorized,
)
from azml_client.emulator._serverless import ServerlessContext, complete, info, model_list
from azml_client.emulator._stats import EmulatorStats

__all__ = ["EmulatorApp", "create_app"]

# Message of the routing failure, quoted from Microsoft's batch-endpoint troubleshooting page
# (MicrosoftDocs/azure-ai-docs how-to-troubleshoot-batch-endpoints.md, "No valid deployments to
# route"); the status is the managed-online 404 "endpoint doesn't have any valid deployment with
# positive weight" ([TSG] error-code table, wire-formats.md 4.1). Used for an unknown
# ``azureml-model-deployment`` header too: the router has nowhere to send the request.
NO_DEPLOYMENT = (
    "No valid deployments to route to. Please check that the endpoint has at least one "
    "deployment with positive weight values or use a deployment specific header to route."
)
_SCRIPT_FAILED = "An unexpected error occurred in scoring script. Check the logs for more info."
_CLIENT_ID_JUNK = re.compile(r"[^A-Za-z0-9_-]")


@dataclass(frozen=True)
class _Target:
    route: Route
    deployment: Deployment | None


def _upstream_timeout(api: Api, headers: dict[str, str] | None = None) -> Response:
    # The front door's 408 text (wire-formats.md 4.1); on /openai/v1 in OpenAI's error shape.
    if api == "openai":
        return platform_error(api, 408, "upstream request timeout", headers)
    return text_response(408, "upstream request timeout", headers)


def _tracing_headers(headers: dict[str, str]) -> dict[str, str]:
    # [TSG] "Request tracing": the client id is kept to alphanumerics, '-' and '_', 40 chars at
    # most; x-request-id is the server's own GUID. x-ms-request-id copies the client id, else
    # the request id ([AMLINFSRV] routes.py).
    out = {"x-request-id": str(uuid.uuid4())}
    client_id = _CLIENT_ID_JUNK.sub("", headers.get("x-ms-client-request-id", ""))[:40]
    if client_id:
        out["x-ms-client-request-id"] = client_id
    out["x-ms-request-id"] = client_id or out["x-request-id"]
    return out


class EmulatorApp:
    """ASGI application emulating one endpoint; ``stats`` holds its live counters.

    Build it with ``create_app``. ``api_key`` is the configured key or, when the config has
    none, a random one generated here.
    """

    def __init__(self, config: EmulatorConfig) -> None:
        self.config = config
        self.api_key = config.api_key or secrets.token_urlsafe(24)
        self.stats = EmulatorStats()
        self._faults = FaultInjector(config.faults, config.seed)
        self._serverless = ServerlessContext(
            model=config.model_name,
            seed=config.seed,
            default_max_tokens=config.default_max_tokens,
            extra_parameters_default=config.extra_parameters_default,
            token_latency=config.faults.token_latency,
            cut_stream=lambda: self._faults.chance(config.faults.stream_cut),
            embedding_dimensions=config.embedding_dimensions,
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """ASGI 3 entry point (HTTP only; lifespan and websockets are ignored)."""
        if scope["type"] != "http":
            return
        request = await read_request(scope, receive)
        path = request.path.rstrip("/") or "/"
        route = ROUTES.get(path)
        name = f"{route.method} {path}" if route else "other"
        tracing = _tracing_headers(request.headers)
        answer = self._check(request, path, route)
        if isinstance(answer, _Target):
            limit = self.config.faults.pending_limit
            if limit is not None and self.stats.in_flight >= limit:
                # [TSG]: more than 2 * max_concurrent_requests_per_instance * instance_count.
                self.stats.pending_rejected += 1
                answer = platform_error(answer.route.api, 429, "Too many pending requests")
            else:
                self.stats.enter()
                try:
                    served = await self._serve(request, answer)
                    await self._send(send, name, served, tracing)
                finally:
                    self.stats.leave()
                return
        await self._send(send, name, answer, tracing)

    def _check(self, request: Request, path: str, route: Route | None) -> Response | _Target:
        if route is None:
            api = api_of_path(path)
            if api == "openai":  # OpenAI's own wording for an unknown path
                return platform_error(api, 404, f"Invalid URL ({request.method} {path})")
            return front_door_error(404, f"Route {path} was not found.")
        api = route.api
        if request.method != route.method:
            return platform_error(api, 405, "Method not allowed")
        if not authorized(request, api, self.api_key):
            return platform_error(api, 401, "Missing or invalid authorization key.")
        problem = api_version_problem(request, api)
        if problem is not None:  # checked by the front door: no rate-limit token is spent
            return validation_error(400, problem)
        if route.kind == "info":
            return info(self.config.model_name)
        if route.kind == "models":
            return model_list(self.config.model_name)
        wait = self._faults.rate_limited()
        if wait:
            self.stats.rate_limited += 1
            headers = retry_after_headers(wait)
            message = f"Rate limit is exceeded. Try again in {headers['retry-after']} seconds."
            return platform_error(api, 429, message, headers)
        if route.kind != "score":
            return _Target(route, None)
        deployment = self._pick_deployment(request)
        if deployment is None:
            return front_door_error(404, NO_DEPLOYMENT)
        self.stats.by_deployment[deployment.name] += 1
        return _Target(route, deployment)

    def _pick_deployment(self, request: Request) -> Deployment | None:
        deployments = self.config.effective_deployments
        wanted = request.headers.get("azureml-model-deployment", "").strip()
        if wanted:  # the header bypasses the traffic split ([EX] safe-rollout sample)
            return next((d for d in deployments if d.name == wanted), None)
        index = self._faults.pick_weighted([d.traffic for d in deployments])
        return None if index is None else deployments[index]

    async def _serve(self, request: Request, target: _Target) -> Response | StreamResponse:
        faults = self.config.faults
        # Real managed endpoints name the deployment that answered in this response header.
        headers = {"azureml-model-deployment": target.deployment.name} if target.deployment else {}
        if self._faults.timed_out:
            await anyio.sleep(faults.request_timeout_ms / 1000)
            return _upstream_timeout(target.route.api, headers)
        if faults.latency:
            await anyio.sleep(faults.latency)
        injected = self._faults.pick_error()
        api = target.route.api
        answer: Response | StreamResponse
        if injected == 408:
            answer = _upstream_timeout(api)
        elif injected == 424:
            answer = self._model_error(ContainerReply(500, {"message": _SCRIPT_FAILED}), force=True)
            if api == "openai":
                answer = platform_error(api, 424, _SCRIPT_FAILED, answer.headers)
        elif injected is not None:
            answer = platform_error(api, injected, HTTPStatus(injected).description)
        elif target.deployment is not None:
            answer = await self._score(request, target.deployment)
        else:
            kind = target.route.kind
            assert kind in ("chat", "completions", "embeddings", "image_embeddings")
            answer = await complete(kind, api, request, self._serverless)
        answer.headers.update(headers)
        return answer

    async def _score(self, request: Request, deployment: Deployment) -> Response:
        config = self.config
        try:
            result = score(
                deployment.family,
                deployment.style,
                request.body,
                seed=config.seed,
                default_max_tokens=config.default_max_tokens,
                model=config.model_name,
            )
        except ContainerReply as reply:
            return self._model_error(reply)
        body = result.body
        if deployment.family == "vllm":
            fault = self._faults.pick_fms_fault()
            if fault is not None:
                body = fms_error_in_200() if fault == "error_in_200" else {}
        if config.faults.token_latency:
            await anyio.sleep(config.faults.token_latency * result.completion_tokens)
        return json_response(200, body)

    def _model_error(self, reply: ContainerReply, *, force: bool = False) -> Response:
        if reply.status == 200:
            return json_response(200, reply.body)
        if not (self.config.wrap_model_errors or force):
            return json_response(reply.status, reply.body)
        # [TSG]: a container non-200 becomes 424 with its status in these headers. The reason
        # value for plain container errors is not documented; "model_error" is our choice.
        headers = {
            "ms-azureml-model-error-statuscode": str(reply.status),
            "ms-azureml-model-error-reason": "model_error",
        }
        return json_response(424, reply.body, headers)

    async def _send(
        self, send: Send, route: str, answer: Response | StreamResponse, tracing: dict[str, str]
    ) -> None:
        answer.headers.update(tracing)
        if (
            isinstance(answer, Response)
            and answer.status == 200
            and answer.headers.get("content-type") == "application/json"
            and self._faults.chance(self.config.faults.malformed_json)
        ):
            answer.body = answer.body[: len(answer.body) // 2]
            self.stats.malformed += 1
        self.stats.record(route, answer.status)  # before sending: the client may look right after
        try:
            await send_response(send, answer)
        except StreamCut:
            self.stats.streams_cut += 1
            raise


def create_app(config: EmulatorConfig | None = None) -> EmulatorApp:
    """Build the emulator ASGI app for ``config`` (default settings when ``None``)."""
    return EmulatorApp(config or EmulatorConfig())
