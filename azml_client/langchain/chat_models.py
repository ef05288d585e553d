"""``AzureMLChatOnlineEndpoint``: LangChain's chat model over azml-client.

Drop-in for ``langchain_community.chat_models.azureml_endpoint.AzureMLChatOnlineEndpoint``::

    from azml_client.langchain import AzureMLChatOnlineEndpoint
    from langchain_core.messages import HumanMessage

    chat = AzureMLChatOnlineEndpoint(
        endpoint_url="https://<endpoint>.<region>.inference.ai.azure.com/v1/chat/completions",
        endpoint_api_key="...",
    )
    chat.invoke([HumanMessage("Will the Collatz conjecture ever be solved?")], max_tokens=512)

Replies carry ``usage_metadata`` and ``response_metadata`` (``model_name``, ``finish_reason``,
``request_id``); ``bind_tools`` and ``with_structured_output`` work on OpenAI-style routes
(serverless, models, openai_v1) and with the ``vllm`` formatter on ``/score``; image content
blocks become OpenAI ``image_url`` parts. Streams end with a chunk marked
``chunk_position="last"`` that alone carries the token counts and the metadata.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from operator import itemgetter
from typing import TYPE_CHECKING, Any, Literal

from langchain_core.callbacks import AsyncCallbackManagerForLLMRun, CallbackManagerForLLMRun
from langchain_core.language_models import LanguageModelInput
from langchain_core.language_models.base import LangSmithParams
from langchain_core.language_models.chat_models import (
    BaseChatModel,
    agenerate_from_stream,
    generate_from_stream,
)
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage
from langchain_core.messages.tool import tool_call_chunk
from langchain_core.output_parsers import JsonOutputParser, PydanticOutputParser
from langchain_core.output_parsers.base import OutputParserLike
from langchain_core.output_parsers.openai_tools import (
    JsonOutputKeyToolsParser,
    PydanticToolsParser,
)
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from langchain_core.runnables import Runnable, RunnableMap, RunnablePassthrough
from langchain_core.tools import BaseTool
from langchain_core.utils.function_calling import (
    convert_to_openai_function,
    convert_to_openai_tool,
)
from langchain_core.utils.pydantic import is_basemodel_subclass

from .._exceptions import StructuredOutputError
from .._types import ChatCompletion
from ._base import AzureMLGenerationBase
from ._messages import (
    ai_message,
    chunk_from_delta,
    last_chunk,
    metadata,
    model_of,
    to_openai_messages,
)
from .llms import can_stream

if TYPE_CHECKING:
    from .._client import EndpointClient
    from .._streaming import AsyncStream
    from .._sync import SyncEndpointClient, SyncStream

__all__ = ["AzureMLChatOnlineEndpoint"]

StructuredMethod = Literal["json_schema", "function_calling", "json_mode"]


def _tool_choice(choice: Any, names: Sequence[str]) -> Any:
    """LangChain's ``tool_choice`` in the OpenAI form: a tool's name becomes the function
    dict, ``"any"`` / ``True`` become ``"required"``, ``False`` / ``None`` send nothing."""
    if choice is None or choice is False:
        return None
    if choice is True or choice == "any":
        return "required"
    if isinstance(choice, str) and choice in names:
        return {"type": "function", "function": {"name": choice}}
    if isinstance(choice, str | dict):
        return choice
    raise ValueError(
        f"tool_choice must be a tool name, 'auto', 'any', 'none', a bool or a dict; got {choice!r}"
    )


def _response_format(schema: Any, strict: bool | None) -> dict[str, Any]:
    """OpenAI's ``json_schema`` response format for a pydantic class, TypedDict or schema."""
    function = convert_to_openai_function(schema, strict=strict)
    spec: dict[str, Any] = {"name": function["name"], "schema": function["parameters"]}
    if function.get("description"):
        spec["description"] = function["description"]
    if strict is not None:
        spec["strict"] = strict
    return {"type": "json_schema", "json_schema": spec}


class AzureMLChatOnlineEndpoint(AzureMLGenerationBase, BaseChatModel):
    """A chat model on an Azure ML online endpoint (``/score`` with a chat formatter), a
    serverless endpoint, the model inference API or the OpenAI v1 API.

    Takes the same arguments as :class:`AzureMLOnlineEndpoint`. Without a formatter a
    ``/score`` endpoint gets ``CustomOpenAIChatContentFormatter`` (``"llama-chat"``).
    """

    # A family key on every kind: the client speaks the OpenAI wire format on the OpenAI-style
    # ones whatever the family, and on /score the chat family is llama-chat.
    _fallback_formatter = "llama-chat"

    def _default_formatter(self, client: EndpointClient) -> str | None:
        return None if client.formatter.supports_chat else self._fallback_formatter

    @property
    def _llm_type(self) -> str:
        return "azureml_chat_endpoint"

    @property
    def _identifying_params(self) -> dict[str, Any]:
        return self._identifying()

    def _get_ls_params(self, stop: list[str] | None = None, **kwargs: Any) -> LangSmithParams:
        return self._ls("chat", stop, kwargs)

    # -- one reply ---------------------------------------------------------------------------

    def _result(self, reply: ChatCompletion) -> ChatResult:
        message = ai_message(reply, model_name=self._model_name())
        info = {"finish_reason": reply.finish_reason} if reply.finish_reason else None
        usage = reply.usage.model_dump(exclude_none=True) if reply.usage else {}
        name = message.response_metadata["model_name"]
        return ChatResult(
            generations=[ChatGeneration(message=message, generation_info=info)],
            llm_output={"token_usage": usage, "model_name": name},
        )

    def _unparsed(self, error: StructuredOutputError) -> ChatResult:
        """The reply to a ``response_format`` request whose text is not the JSON asked for:
        given to LangChain's parser as it is, which reports it (or ``include_raw`` keeps it)."""
        meta = metadata(
            model_name=self._model_name(),
            finish_reason=error.finish_reason,
            request_id=error.request_id,
        )
        message = AIMessage(content=error.text, response_metadata=meta)
        return ChatResult(generations=[ChatGeneration(message=message)])

    def _call(
        self, client: SyncEndpointClient, wire: list[dict[str, Any]], stop: Any, **kwargs: Any
    ) -> ChatResult:
        try:
            return self._result(client.chat(wire, stop=stop, **kwargs))
        except StructuredOutputError as error:
            return self._unparsed(error)

    async def _acall(
        self, client: EndpointClient, wire: list[dict[str, Any]], stop: Any, **kwargs: Any
    ) -> ChatResult:
        try:
            return self._result(await client.chat(wire, stop=stop, **kwargs))
        except StructuredOutputError as error:
            return self._unparsed(error)

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        if self.streaming:
            return generate_from_stream(self._stream(messages, stop, run_manager, **kwargs))
        stop, params, options = self._split(stop, kwargs)
        wire = to_openai_messages(messages)
        return self._call(self._clients.sync(), wire, stop, **options, **params)

    async def _agenerate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        if self.streaming:
            return await agenerate_from_stream(self._astream(messages, stop, run_manager, **kwargs))
        stop, params, options = self._split(stop, kwargs)
        wire = to_openai_messages(messages)
        return await self._acall(await self._clients.aget(), wire, stop, **options, **params)

    # -- streams -----------------------------------------------------------------------------

    def _whole(self, result: ChatResult) -> ChatGenerationChunk:
        """A reply that could not stream, as the one and last chunk of a stream."""
        message = result.generations[0].message
        assert isinstance(message, AIMessage)
        chunk = AIMessageChunk(
            content=message.content,
            tool_call_chunks=[
                tool_call_chunk(name=c["name"], args=_json(c["args"]), id=c.get("id"), index=i)
                for i, c in enumerate(message.tool_calls)
            ],
            usage_metadata=message.usage_metadata,
            response_metadata=message.response_metadata,
            id=message.id,
            chunk_position="last",
        )
        return ChatGenerationChunk(message=chunk)

    def _final(self, name: str, stream: AsyncStream | SyncStream) -> ChatGenerationChunk:
        """The chunk that ends a stream: usage and metadata (see ``last_chunk``)."""
        meta = metadata(
            model_name=name, finish_reason=stream.finish_reason, request_id=stream.request_id
        )
        return ChatGenerationChunk(message=last_chunk(usage=stream.usage, response_metadata=meta))

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        stop, params, options = self._split(stop, kwargs)
        client = self._clients.sync()
        wire = to_openai_messages(messages)
        if not can_stream(client.formatter, client.api_type):
            chunk = self._whole(self._call(client, wire, stop, **options, **params))
            if run_manager:
                run_manager.on_llm_new_token(chunk.text, chunk=chunk)
            yield chunk
            return
        name = self._model_name()
        with client.stream(wire, stop=stop, **options, **params) as stream:
            for piece in stream:
                name = model_of(piece.raw) or name
                if piece.text or _calls_in(piece.delta):
                    chunk = ChatGenerationChunk(message=chunk_from_delta(piece.text, piece.delta))
                    if run_manager:
                        run_manager.on_llm_new_token(chunk.text, chunk=chunk)
                    yield chunk
        final = self._final(name, stream)
        if run_manager:
            run_manager.on_llm_new_token("", chunk=final)
        yield final

    async def _astream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> AsyncIterator[ChatGenerationChunk]:
        stop, params, options = self._split(stop, kwargs)
        client = await self._clients.aget()
        wire = to_openai_messages(messages)
        if not can_stream(client.formatter, client.api_type):
            chunk = self._whole(await self._acall(client, wire, stop, **options, **params))
            if run_manager:
                await run_manager.on_llm_new_token(chunk.text, chunk=chunk)
            yield chunk
            return
        name = self._model_name()
        async with client.stream(wire, stop=stop, **options, **params) as stream:
            async for piece in stream:
                name = model_of(piece.raw) or name
                if piece.text or _calls_in(piece.delta):
                    chunk = ChatGenerationChunk(message=chunk_from_delta(piece.text, piece.delta))
                    if run_manager:
                        await run_manager.on_llm_new_token(chunk.text, chunk=chunk)
                    yield chunk
        final = self._final(name, stream)
        if run_manager:
            await run_manager.on_llm_new_token("", chunk=final)
        yield final

    # -- tools and structured output ---------------------------------------------------------

    def bind_tools(
        self,
        tools: Sequence[dict[str, Any] | type | Callable[..., Any] | BaseTool],
        *,
        tool_choice: dict[str, Any] | str | bool | None = None,
        strict: bool | None = None,
        **kwargs: Any,
    ) -> Runnable[LanguageModelInput, AIMessage]:
        """Offer tools to the model (OpenAI tool schema, via ``convert_to_openai_tool``).

        ``tool_choice``: a tool's name (that tool), ``"auto"``, ``"none"``, ``"any"`` or
        ``True`` (sent as ``"required"``: some tool must be called) or an OpenAI dict.
        """
        formatted = [convert_to_openai_tool(tool, strict=strict) for tool in tools]
        names = [t["function"]["name"] for t in formatted if "function" in t]
        choice = _tool_choice(tool_choice, names)
        if choice is not None:
            kwargs["tool_choice"] = choice
        return self.bind(tools=formatted, **kwargs)

    def with_structured_output(
        self,
        schema: dict[str, Any] | type | None = None,
        *,
        method: StructuredMethod = "json_schema",
        include_raw: bool = False,
        strict: bool | None = None,
        **kwargs: Any,
    ) -> Runnable[LanguageModelInput, dict[str, Any] | Any]:
        """Answers shaped by ``schema`` (a pydantic class, a TypedDict or a JSON schema).

        ``method``:

        * ``"json_schema"`` (the default): OpenAI's ``response_format`` with the schema; the
          reply's text is the JSON. The default because the answer is the model's own
          message (no forced tool call, so ``finish_reason`` and streaming stay normal), it
          is what the OpenAI v1 API and the model inference API offer for structured output,
          and it matches ``ChatOpenAI``'s default;
        * ``"function_calling"``: the schema as the one tool, which the model must call;
        * ``"json_mode"``: ``{"type": "json_object"}``; the prompt must describe the shape.

        ``include_raw=True`` returns ``{"raw": AIMessage, "parsed": ..., "parsing_error": ...}``.
        """
        if kwargs:
            raise ValueError(f"unexpected arguments: {', '.join(sorted(kwargs))}")
        if schema is None and method != "json_mode":
            raise ValueError(f"method={method!r} needs a schema")
        pydantic = isinstance(schema, type) and is_basemodel_subclass(schema)
        trace = {"kwargs": {"method": method, "strict": strict}, "schema": schema}
        parser: OutputParserLike[Any]
        if method == "function_calling":
            name = convert_to_openai_tool(schema)["function"]["name"]  # type: ignore[arg-type]  # not None here
            llm = self.bind_tools(
                [schema],  # type: ignore[list-item]  # a pydantic class, TypedDict or schema
                tool_choice=name,
                strict=strict,
                ls_structured_output_format=trace,
            )
            parser = (
                PydanticToolsParser(tools=[schema], first_tool_only=True)
                if pydantic
                else JsonOutputKeyToolsParser(key_name=name, first_tool_only=True)
            )
        elif method == "json_schema":
            llm = self.bind(
                response_format=_response_format(schema, strict), ls_structured_output_format=trace
            )
            parser = _json_parser(schema, pydantic)
        elif method == "json_mode":
            llm = self.bind(
                response_format={"type": "json_object"}, ls_structured_output_format=trace
            )
            parser = _json_parser(schema, pydantic)
        else:
            raise ValueError(
                f"unknown method {method!r}: use 'json_schema', 'function_calling' or 'json_mode'"
            )
        if not include_raw:
            return llm | parser
        parse = RunnablePassthrough.assign(
            parsed=itemgetter("raw") | parser, parsing_error=lambda _: None
        )
        fallback = RunnablePassthrough.assign(parsed=lambda _: None)
        return RunnableMap(raw=llm) | parse.with_fallbacks(
            [fallback], exception_key="parsing_error"
        )


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)


def _json_parser(schema: Any, pydantic: bool) -> OutputParserLike[Any]:
    """The parser of a reply whose text is the JSON (json_schema and json_mode)."""
    if pydantic:
        return PydanticOutputParser(pydantic_object=schema)
    return JsonOutputParser()


def _calls_in(delta: Any) -> bool:
    return isinstance(delta, dict) and bool(delta.get("tool_calls"))
