"""Where a client command sends its calls: the connection flags, or an embedded emulator.

:func:`endpoint` turns the flags into ``EndpointClient`` arguments, starting the emulator for
``--emulator`` (:func:`emulator_plan` picks what it emulates); :func:`check_client` refuses,
before anything is sent, what the endpoint kind cannot serve, naming the flag to change.
"""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from .._client import EndpointClient
from .._constants import ApiType
from .._exceptions import ConfigurationError
from .._router import EndpointRouter, load_router
from ..formatters import FormatterInfo, get_formatter, list_formatters
from ._parser import faults_in_cli_terms, faults_kwargs, given_fault_flags

__all__ = ["Client", "check_client", "connect", "emulator_plan", "endpoint", "wants_embeddings"]

#: What a client command talks through: one endpoint's client, or a router (``--routes``).
Client = EndpointClient | EndpointRouter

#: Flags that name one endpoint: with --routes the routes file names them per endpoint.
_ONE_ENDPOINT_FLAGS = (
    ("endpoint_url", "--endpoint-url"),
    ("api_type", "--api-type"),
    ("deployment", "--deployment"),
    ("model", "--model"),
    ("api_version", "--api-version"),
    ("formatter", "--formatter"),
    ("api_key", "--api-key"),
    ("emulator", "--emulator"),
)

#: Family of the embedded emulator's /score (and formatter) when neither is given: it answers
#: prompts and chats alike and reports usage, so mixed batch files work out of the box.
EMULATOR_DEFAULT_FAMILY = "vllm"

#: What ``--emulator`` emulates for the commands that need embeddings or /info when no
#: ``--api-type`` is given: the model inference API serves both.
EMULATOR_ROUTES_KIND = "models"


def wants_embeddings(args: argparse.Namespace) -> bool:
    """Whether the command embeds texts (``embed``, ``batch --task embeddings``)."""
    return args.command == "embed" or getattr(args, "task", None) == "embeddings"


def _needs_routes(args: argparse.Namespace) -> bool:
    return args.command == "info" or wants_embeddings(args)


def _formatter_info(key: str | None) -> FormatterInfo | None:
    if not key:
        return None
    wanted = key.strip().lower().replace("_", "-")
    return next((f for f in list_formatters() if wanted == f.key or wanted in f.aliases), None)


def _streams_on_dedicated(key: str) -> bool:
    try:
        return "dedicated" in {str(t) for t in get_formatter(key).stream_api_types}
    except ConfigurationError:
        return False


def emulator_plan(args: argparse.Namespace) -> tuple[str, str | None, str]:
    """``(api_type, formatter, emulator family)`` of an ``--emulator`` run.

    ``--api-type`` when given. Otherwise ``models`` for ``embed``, ``info`` and
    ``batch --task embeddings``; else dedicated ``/score`` unless a serverless-only
    ``--formatter`` (``openai``), ``--stream`` with a family that streams only on serverless,
    or ``--tools`` / ``--response-format`` (the emulated ``/score`` ignores them) ask for
    serverless. The emulator's family follows ``--emulator-family``, else
    ``--formatter``, else ``vllm``; the formatter follows the family when not given. Off
    ``/score`` the formatter is left to the client (the OpenAI wire format).
    """
    from ..emulator import FAMILIES

    info = _formatter_info(args.formatter)
    family = args.emulator_family or (
        info.key if info is not None and info.key in FAMILIES else EMULATOR_DEFAULT_FAMILY
    )
    api_type = args.api_type
    if api_type is None and _needs_routes(args):
        api_type = EMULATOR_ROUTES_KIND
    if api_type is None:
        serverless_only = info is not None and "dedicated" not in info.api_types
        wants_stream = getattr(args, "stream", False) and not _streams_on_dedicated(
            args.formatter or family
        )
        openai_only = bool(getattr(args, "tools", None) or getattr(args, "response_format", None))
        serverless = serverless_only or wants_stream or openai_only
        api_type = "serverless" if serverless else "dedicated"
    if api_type != "dedicated":
        return api_type, args.formatter, args.emulator_family or "llama"
    return api_type, args.formatter or family, family


def _given_emulator_flags(args: argparse.Namespace) -> list[str]:
    given = ["--emulator-family"] if args.emulator_family else []
    given += ["--emulator-seed"] if args.emulator_seed is not None else []
    return given + [f"--emulator-{flag.name}" for flag in given_fault_flags(args)]


def _routes_arguments(args: argparse.Namespace) -> dict[str, Any]:
    """``--routes``: the routes file and the router options the flags give."""
    if args.command == "info":
        raise ConfigurationError(
            "azml info asks one endpoint: give it with --endpoint-url instead of --routes"
        )
    given = [flag for name, flag in _ONE_ENDPOINT_FLAGS if getattr(args, name, None)]
    given += _given_emulator_flags(args)
    if given:
        raise ConfigurationError(
            f"{given[0]} names one endpoint: with --routes set it for each endpoint in "
            f"{args.routes} (a saved client config, or the endpoint's settings)"
        )
    kwargs: dict[str, Any] = {"routes": args.routes}
    if args.timeout is not None:
        kwargs["timeout"] = args.timeout
    if args.max_retries is not None:
        kwargs["max_retries"] = args.max_retries
    return kwargs


def connect(kwargs: dict[str, Any]) -> Client:
    """The client a command talks through: ``EndpointClient(**kwargs)``, or with ``--routes``
    the router of the routes file (``kwargs`` from :func:`endpoint`)."""
    if "routes" in kwargs:
        options = dict(kwargs)
        return load_router(options.pop("routes"), **options)
    return EndpointClient(**kwargs)


@contextmanager
def endpoint(args: argparse.Namespace) -> Iterator[dict[str, Any]]:
    """The ``EndpointClient`` arguments of a client command (starting the emulator if asked),
    or with ``--routes`` the routes file and the router's options (see :func:`connect`)."""
    if getattr(args, "routes", None):
        yield _routes_arguments(args)
        return
    kwargs: dict[str, Any] = {
        "endpoint_url": args.endpoint_url,
        "api_key": args.api_key,
        "api_type": args.api_type,
        "deployment_name": args.deployment,
        "model": args.model,
        "api_version": args.api_version,
        "formatter": args.formatter,
        "timeout": args.timeout,
        "max_retries": args.max_retries,
    }
    if not args.emulator:
        extra = _given_emulator_flags(args)
        if extra:
            raise ConfigurationError(f"{extra[0]} only applies with --emulator")
        yield kwargs
        return
    if args.endpoint_url:
        raise ConfigurationError("--emulator runs a local endpoint: drop --endpoint-url")
    from ..emulator import Deployment, EmulatorConfig, Faults, run_emulator

    api_type, formatter, family = emulator_plan(args)
    try:
        config = EmulatorConfig(
            family=family,
            deployments=[Deployment(args.deployment, family)] if args.deployment else (),
            seed=args.emulator_seed or 0,
            faults=Faults(**faults_kwargs(args)),
        )
    except ValueError as exc:
        raise ConfigurationError(
            f"emulator: {faults_in_cli_terms(str(exc), 'emulator-')}"
        ) from None
    with run_emulator(config) as emu:
        urls = {
            "dedicated": emu.score_url,
            "serverless": emu.serverless_url,
            "models": emu.models_url,
            "openai_v1": emu.openai_v1_url,
        }
        model = args.model
        if model is None and api_type == "openai_v1":  # the v1 API names a model in each call
            model = args.deployment or config.model_name
        kwargs.update(endpoint_url=urls[api_type], api_key=emu.api_key, api_type=api_type)
        # "" (not None) so a developer's AZUREML_DEPLOYMENT_NAME is not sent to the emulator.
        kwargs.update(formatter=formatter, deployment_name=args.deployment or "", model=model)
        yield kwargs


def _check_router(router: EndpointRouter, args: argparse.Namespace) -> None:
    """Refuse a command none of the router's endpoints can serve, naming the routes file."""
    if wants_embeddings(args) and not router.able("embed"):
        command = "azml batch --task embeddings" if args.command == "batch" else "azml embed"
        raise ConfigurationError(
            f"no endpoint of {args.routes} has an embeddings route: {command} needs a "
            "serverless, models or openai_v1 endpoint among them"
        )


def check_client(client: Client, args: argparse.Namespace) -> None:
    """Refuse what this endpoint kind cannot do, before anything is sent, in flag terms."""
    if isinstance(client, EndpointRouter):
        _check_router(client, args)
        return
    kind, url = client.api_type, client.settings.endpoint_url
    command = f"azml {args.command}"
    if args.command == "batch" and wants_embeddings(args):
        command += " --task embeddings"
    if args.command == "info" and client.routes.info is None:
        why = (
            "Azure OpenAI and the Foundry v1 API do not serve it"
            if kind is ApiType.OPENAI_V1
            else "/score answers only POST"
        )
        raise ConfigurationError(
            f"{url} is a {kind} endpoint, which has no /info ({why}): {command} needs a models "
            "or serverless endpoint: give one with --endpoint-url (e.g. "
            "https://RESOURCE.services.ai.azure.com/models) or --api-type models"
        )
    if wants_embeddings(args) and client.routes.embeddings is None:
        raise ConfigurationError(
            f"{url} is a {kind} endpoint, which has no embeddings route: {command} needs a "
            "serverless, models or openai_v1 endpoint: give one with --endpoint-url and "
            "--api-type"
        )
    settings = client.settings
    if kind is ApiType.OPENAI_V1 and not (settings.model or settings.deployment_name):
        raise ConfigurationError(
            "the openai_v1 API names the model in every request: pass --model NAME (your "
            "Azure OpenAI deployment's name, case-sensitive)"
        )
