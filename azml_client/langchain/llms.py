"""``AzureMLOnlineEndpoint``: LangChain's text-completion model over azml-client.

Drop-in for ``langchain_community.llms.azureml_endpoint.AzureMLOnlineEndpoint``::

    from azml_client.langchain import AzureMLOnlineEndpoint, CustomOpenAIContentFormatter

    llm = AzureMLOnlineEndpoint(
        endpoint_url="https://<endpoint>.<region>.inference.ml.azure.com/score",
        endpoint_api_type="dedicated",
        endpoint_api_key="...",
        content_formatter=CustomOpenAIContentFormatter(),
        model_kwargs={"temperature": 0.8, "max_new_tokens": 400},
    )
    llm.invoke("Write me a song about sparkling water:", temperature=0.5)

Several prompts handed to one call (``llm.batch(prompts)`` without ``max_concurrency``,
``generate()``) run through the client's bulk engine: adaptive concurrency, retries, results in
input order. Async calls are native; ``stream()`` streams where the endpoint does (serverless
routes, TGI) and answers in one chunk elsewhere.
"""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from langchain_core.callbacks import AsyncCallbackManagerForLLMRun, CallbackManagerForLLMRun
from langchain_core.language_models.base import LangSmithParams
from langchain_core.language_models.llms import BaseLLM
from langchain_core.outputs import Generation, GenerationChunk, LLMResult

from .._client import supports
from .._constants import ApiType
from .._exceptions import ConfigurationError
from .._redact import url_secrets
from .._types import Completion, Usage
from ._base import AzureMLGenerationBase
from ._messages import model_of

if TYPE_CHECKING:
    from .._client import EndpointClient
    from .._sync import SyncEndpointClient
    from ..formatters._base import ContentFormatterBase

__all__ = ["AzureMLOnlineEndpoint", "can_stream"]

#: The version of the file :meth:`AzureMLOnlineEndpoint.save` writes.
SAVE_FORMAT = 1
#: What ``with_options()`` can set for one batch of prompts.
_BATCH_OPTIONS = ("timeout", "deadline", "max_retries", "deployment_name", "extra_parameters")


def can_stream(formatter: ContentFormatterBase, api_type: ApiType) -> bool:
    """Whether the client streams this formatter's answers on this endpoint kind."""
    return supports(formatter.stream_api_types, api_type)


def _info(completion: Completion, model_name: str) -> dict[str, Any]:
    c = completion
    return _final_info(c.model or model_name, c.finish_reason, c.usage, c.request_id)


def _final_info(
    model_name: str, finish: str | None, usage: Usage | None, request_id: str | None
) -> dict[str, Any]:
    info: dict[str, Any] = {"model_name": model_name}
    if finish is not None:
        info["finish_reason"] = finish
    if usage is not None:
        info["token_usage"] = usage.model_dump(exclude_none=True)
    if request_id is not None:
        info["request_id"] = request_id
    return info


def _batch_options(options: Mapping[str, Any]) -> dict[str, Any]:
    if "extra_headers" in options:
        raise ConfigurationError(
            "extra_headers applies to one request: for a batch of prompts set "
            "client_kwargs={'default_headers': {...}} on the model"
        )
    return {k: options[k] for k in _BATCH_OPTIONS if k in options}


class AzureMLOnlineEndpoint(AzureMLGenerationBase, BaseLLM):
    """A text-completion model on an Azure ML online endpoint, a serverless endpoint, the
    model inference API or the OpenAI v1 API (see the module docstring for an example).

    Takes LangChain's arguments (``endpoint_url``, ``endpoint_api_type``,
    ``endpoint_api_key``, ``deployment_name``, ``content_formatter``, ``model_kwargs``,
    ``timeout``, ``max_retries``, the ``AZUREML_*`` variables) and azml-client's (``api_key``,
    ``api_type``, ``formatter``, ``model``, ``client=``, ``client_kwargs``).
    """

    @property
    def _llm_type(self) -> str:
        return "azureml_endpoint"

    @property
    def _identifying_params(self) -> Mapping[str, Any]:
        return self._identifying()

    def _get_ls_params(self, stop: list[str] | None = None, **kwargs: Any) -> LangSmithParams:
        return self._ls("llm", stop, kwargs)

    # -- results -----------------------------------------------------------------------------

    def _result(self, completions: Sequence[Completion]) -> LLMResult:
        name = self._model_name()
        generations = [
            [Generation(text=c.text, generation_info=_info(c, name))] for c in completions
        ]
        totals: dict[str, int] = {}
        for c in completions:
            for key, value in (c.usage.model_dump(exclude_none=True) if c.usage else {}).items():
                if isinstance(value, int):
                    totals[key] = totals.get(key, 0) + value
        return LLMResult(
            generations=generations, llm_output={"token_usage": totals, "model_name": name}
        )

    # -- blocking ----------------------------------------------------------------------------

    def _generate(
        self,
        prompts: list[str],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> LLMResult:
        if self.streaming and len(prompts) == 1:
            chunk: GenerationChunk | None = None
            for piece in self._stream(prompts[0], stop, run_manager, **kwargs):
                chunk = piece if chunk is None else chunk + piece
            assert chunk is not None
            return LLMResult(generations=[[Generation(**chunk.model_dump(exclude={"type"}))]])
        stop, params, options = self._split(stop, kwargs)
        client = self._clients.sync()
        if len(prompts) == 1:
            return self._result([client.complete(prompts[0], stop=stop, **options, **params)])
        if stop is not None:
            params["stop"] = stop
        runner: SyncEndpointClient = client
        if batch_options := _batch_options(options):
            runner = client.with_options(**batch_options)
        results = runner.batch(prompts, return_exceptions=False, **params)
        return self._result([r for r in results if isinstance(r, Completion)])

    def _stream(
        self,
        prompt: str,
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[GenerationChunk]:
        stop, params, options = self._split(stop, kwargs)
        client = self._clients.sync()
        name = self._model_name()
        if not can_stream(client.formatter, client.api_type):
            whole = client.complete(prompt, stop=stop, **options, **params)
            chunk = GenerationChunk(text=whole.text, generation_info=_info(whole, name))
            if run_manager:
                run_manager.on_llm_new_token(chunk.text, chunk=chunk)
            yield chunk
            return
        with client.stream(prompt, stop=stop, **options, **params) as stream:
            for piece in stream:
                name = model_of(piece.raw) or name
                if piece.text:
                    chunk = GenerationChunk(text=piece.text)
                    if run_manager:
                        run_manager.on_llm_new_token(chunk.text, chunk=chunk)
                    yield chunk
        info = _final_info(name, stream.finish_reason, stream.usage, stream.request_id)
        yield GenerationChunk(text="", generation_info=info)

    # -- async -------------------------------------------------------------------------------

    async def _agenerate(
        self,
        prompts: list[str],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> LLMResult:
        if self.streaming and len(prompts) == 1:
            chunk: GenerationChunk | None = None
            async for piece in self._astream(prompts[0], stop, run_manager, **kwargs):
                chunk = piece if chunk is None else chunk + piece
            assert chunk is not None
            return LLMResult(generations=[[Generation(**chunk.model_dump(exclude={"type"}))]])
        stop, params, options = self._split(stop, kwargs)
        client = await self._clients.aget()
        if len(prompts) == 1:
            reply = await client.complete(prompts[0], stop=stop, **options, **params)
            return self._result([reply])
        if stop is not None:
            params["stop"] = stop
        runner: EndpointClient = client
        if batch_options := _batch_options(options):
            runner = client.with_options(**batch_options)
        results = await runner.batch(prompts, return_exceptions=False, **params)
        return self._result([r for r in results if isinstance(r, Completion)])

    async def _astream(
        self,
        prompt: str,
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> AsyncIterator[GenerationChunk]:
        stop, params, options = self._split(stop, kwargs)
        client = await self._clients.aget()
        name = self._model_name()
        if not can_stream(client.formatter, client.api_type):
            whole = await client.complete(prompt, stop=stop, **options, **params)
            chunk = GenerationChunk(text=whole.text, generation_info=_info(whole, name))
            if run_manager:
                await run_manager.on_llm_new_token(chunk.text, chunk=chunk)
            yield chunk
            return
        async with client.stream(prompt, stop=stop, **options, **params) as stream:
            async for piece in stream:
                name = model_of(piece.raw) or name
                if piece.text:
                    chunk = GenerationChunk(text=piece.text)
                    if run_manager:
                        await run_manager.on_llm_new_token(chunk.text, chunk=chunk)
                    yield chunk
        info = _final_info(name, stream.finish_reason, stream.usage, stream.request_id)
        yield GenerationChunk(text="", generation_info=info)

    # -- save --------------------------------------------------------------------------------

    def save(self, file_path: Path | str) -> None:
        """Write the model's settings as JSON or YAML (by the file's suffix); never the key.

        The file keeps the URL, api type, deployment, model, formatter, model parameters,
        timeout, retries and the name of the variable that holds the key
        (``AZUREML_ENDPOINT_API_KEY`` unless ``api_key_env`` says otherwise); read it back with
        :func:`azml_client.langchain.load_llm`.
        """
        path = Path(file_path)
        if path.suffix not in (".json", ".yaml", ".yml"):
            raise ValueError(f"{path} must be json or yaml")
        data = self.saved_settings()
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f"{path.name}.tmp")
        with tmp.open("w", encoding="utf-8") as fh:
            if path.suffix == ".json":
                json.dump(data, fh, indent=2)
                fh.write("\n")
            else:
                import yaml  # type: ignore[import-untyped]  # PyYAML ships no type hints

                yaml.safe_dump(data, fh, default_flow_style=False, sort_keys=False)
        os.replace(tmp, path)

    def saved_settings(self) -> dict[str, Any]:
        """What :meth:`save` writes (a dict of plain JSON values)."""
        ref = self.formatter_reference()
        if ref is None:
            raise ConfigurationError(
                f"cannot save formatter {type(self.content_formatter).__qualname__}: define it at "
                "module level so load_llm() can import it (or pass content_formatter= to "
                "load_llm())"
            )
        if self.endpoint_url and url_secrets(self.endpoint_url):
            raise ConfigurationError(
                "the endpoint URL carries a credential (a password, or a query parameter such "
                "as code=, sig= or api-key=), and a saved model never holds one: remove it "
                "from the URL and pass it as endpoint_api_key= (read from api_key_env when "
                "loading) or in client_kwargs={'default_headers': ...}"
            )
        data: dict[str, Any] = {
            "_type": self._llm_type,
            "azml_client": SAVE_FORMAT,
            "endpoint_url": self.endpoint_url,
            "endpoint_api_type": str(self.endpoint_api_type),
            "deployment_name": self.deployment_name,
            "model": self.model,
            "content_formatter": ref[0],
            "formatter_options": ref[1] or None,
            "model_kwargs": dict(self.model_kwargs or {}),
            "temperature": self.temperature,
            "max_tokens": self.max_tokens,
            "stop": self.stop,
            "timeout": self.timeout,
            "max_retries": self.max_retries,
            "api_key_env": self.api_key_env,
        }
        return {k: v for k, v in data.items() if v is not None}
