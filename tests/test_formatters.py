"""Formatters as pure functions: request bodies and every recorded answer shape, per family."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from azml_client import (
    APIStatusError,
    AzmlError,
    ConfigurationError,
    ContentFormatterBase,
    CustomOpenAIContentFormatter,
    EmptyResponseError,
    FormatRequest,
    GPT2ContentFormatter,
    LlamaChatContentFormatter,
    LlamaContentFormatter,
    OSSContentFormatter,
    ParsedOutput,
    ResponseFormatError,
    ServerError,
    get_formatter,
    list_formatters,
    register_formatter,
    unregister_formatter,
)
from azml_client._constants import ApiType
from azml_client.formatters._base import decode_response, encode_request

D, S = ApiType.DEDICATED, ApiType.SERVERLESS
TRICKY = 'Say "hi"\nthen stop \\ ünïcode'
PARAMS = {"temperature": 0.5, "max_new_tokens": 20}


def body_of(key: str, request: FormatRequest) -> Any:
    return json.loads(encode_request(get_formatter(key), request))


def parse(key: str, data: Any, request: FormatRequest | None = None) -> ParsedOutput:
    req = request or FormatRequest(api_type=D, prompt="p")
    raw = data if isinstance(data, bytes) else json.dumps(data).encode()
    return decode_response(get_formatter(key), raw, req)[0]


# -- request bodies ----------------------------------------------------------------------------

COMPLETION = FormatRequest(api_type=D, prompt=TRICKY, params=PARAMS)


@pytest.mark.parametrize(
    ("key", "expected"),
    [
        ("gpt2", {"input_data": [TRICKY], "params": PARAMS}),
        ("dolly", {"input_data": [TRICKY], "params": PARAMS}),
        ("bart", {"input_data": [TRICKY], "params": PARAMS}),
        ("vllm", {"input_data": [TRICKY], "params": PARAMS}),
        ("hf", {"inputs": {"input_string": [TRICKY]}, "parameters": PARAMS}),
        ("tgi", {"inputs": TRICKY, "parameters": PARAMS}),
        ("llama", {"input_data": {"input_string": [TRICKY], "parameters": PARAMS}}),
        (
            "llama-chat",
            {
                "input_data": {
                    "input_string": [{"role": "user", "content": TRICKY}],
                    "parameters": PARAMS,
                }
            },
        ),
    ],
)
def test_dedicated_completion_bodies(key: str, expected: Any) -> None:
    assert body_of(key, COMPLETION) == expected


def test_prompt_is_encoded_exactly_once_without_added_quotes() -> None:
    raw = encode_request(get_formatter("llama"), COMPLETION)
    # The server's own json.loads gives back the prompt exactly: no quotes, no backslashes added.
    assert json.loads(raw)["input_data"]["input_string"][0] == TRICKY
    assert b'\\\\"' not in raw  # LangChain's double escaping would produce \\\"
    assert "ünïcode".encode() in raw  # UTF-8 as is


def test_schema_option_selects_the_container_generation() -> None:
    req = FormatRequest(api_type=D, prompt="p", params={"top_p": 0.9})
    v1 = json.loads(encode_request(GPT2ContentFormatter(schema="v1"), req))
    v2 = json.loads(encode_request(GPT2ContentFormatter(schema="v2"), req))
    assert v1 == {"inputs": {"input_string": ["p"]}, "parameters": {"top_p": 0.9}}
    assert v2 == {"input_data": {"input_string": ["p"], "parameters": {"top_p": 0.9}}}
    with pytest.raises(ConfigurationError, match="v1, v2, v3"):
        GPT2ContentFormatter(schema="v9")  # type: ignore[arg-type]


def test_empty_params_are_left_out() -> None:
    assert body_of("dolly", FormatRequest(prompt="x")) == {"input_data": ["x"]}
    assert body_of("llama", FormatRequest(prompt="x")) == {"input_data": {"input_string": ["x"]}}


def test_parameter_names_follow_the_family() -> None:
    req = FormatRequest(api_type=D, prompt="p", params={"max_tokens": 5})
    assert body_of("llama", req)["input_data"]["parameters"] == {"max_new_tokens": 5}
    sreq = FormatRequest(api_type=S, prompt="p", params={"max_new_tokens": 5})
    assert body_of("openai", sreq) == {"prompt": "p", "max_tokens": 5}
    both = FormatRequest(api_type=S, prompt="p", params={"max_new_tokens": 5, "max_tokens": 7})
    assert body_of("openai", both) == {"prompt": "p", "max_new_tokens": 5, "max_tokens": 7}


def test_chat_bodies() -> None:
    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": TRICKY}]
    dreq = FormatRequest(api_type=D, messages=messages, params={"temperature": 0.1})
    expected = {"input_data": {"input_string": messages, "parameters": {"temperature": 0.1}}}
    assert body_of("llama-chat", dreq) == expected
    assert body_of("vllm", dreq) == expected
    sreq = FormatRequest(api_type=S, messages=messages, params={"temperature": 0.1}, stream=True)
    assert body_of("openai", sreq) == {"messages": messages, "temperature": 0.1, "stream": True}
    assert body_of("llama-chat", sreq) == body_of("openai", sreq)


def test_mistral_chat_folds_the_system_prompt_on_score() -> None:
    """Mistral-Instruct's template takes no system role: 'mistral-chat' folds it into the
    first user turn (it was an alias of 'llama-chat', which sent it as is)."""
    assert get_formatter("mistral-chat").name == "mistral-chat"
    messages = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": TRICKY},
        {"role": "assistant", "content": "ok"},
    ]
    body = body_of("mistral-chat", FormatRequest(api_type=D, messages=messages))
    assert body["input_data"]["input_string"] == [
        {"role": "user", "content": f"Be brief.\n\n{TRICKY}"},
        {"role": "assistant", "content": "ok"},
    ]
    alone = FormatRequest(api_type=D, messages=[{"role": "system", "content": "Only."}])
    assert body_of("mistral-chat", alone)["input_data"]["input_string"] == [
        {"role": "user", "content": "Only."}
    ]
    plain = [{"role": "user", "content": "Hi"}]
    assert body_of("mistral-chat", FormatRequest(api_type=D, messages=plain)) == body_of(
        "llama-chat", FormatRequest(api_type=D, messages=plain)
    )


def test_custom_openai_on_serverless_sends_openai_prompt() -> None:
    req = FormatRequest(api_type=S, prompt=TRICKY, params={"temperature": 0})
    assert body_of("llama", req) == {"prompt": TRICKY, "temperature": 0}


# -- answers -----------------------------------------------------------------------------------

GENERATION_SHAPES = [
    ([{"0": "out"}], "out"),
    ([{"0": "out"}, {"0": "second"}], "out"),
    ([{"0": "out", "1": "second"}], "out"),
    (["out", "x"], "out"),
    ({"output": ["out"]}, "out"),
    ({"output": "out"}, "out"),
    ([{"generated_text": "out"}], "out"),
    ({"generated_text": "out", "details": {"finish_reason": "eos_token"}}, "out"),
    ([{"0": {"generated_text": "out"}}], "out"),
    ([{"summary_text": "out"}], "out"),
]


@pytest.mark.parametrize("key", ["gpt2", "dolly", "hf", "tgi", "llama", "vllm", "bart"])
@pytest.mark.parametrize(("data", "text"), GENERATION_SHAPES)
def test_every_text_family_reads_every_recorded_shape(key: str, data: Any, text: str) -> None:
    assert parse(key, data).text == text


def test_fms_answer_metadata() -> None:
    data = {
        "output": ["out"],
        "finish_reason": "length",
        "usage": {"prompt_tokens": 3, "completion_tokens": 5, "total_tokens": 8},
        "model": "m",
        "id": "cmpl-1",
    }
    out = parse("vllm", data)
    assert (out.text, out.finish_reason, out.model, out.id) == ("out", "length", "m", "cmpl-1")
    assert out.usage == data["usage"]


def test_tgi_finish_reason_is_normalised() -> None:
    data: dict[str, Any] = {
        "generated_text": "x",
        "details": {"finish_reason": "length", "generated_tokens": 2},
    }
    assert parse("tgi", data).finish_reason == "length"
    data["details"]["finish_reason"] = "stop_sequence"
    assert parse("tgi", data).finish_reason == "stop"


def test_dedicated_chat_answers() -> None:
    chat = FormatRequest(api_type=D, messages=[{"role": "user", "content": "hi"}])
    assert parse("llama-chat", {"output": " Paris"}, chat).text == " Paris"
    fms = {
        "output": "Paris",
        "message": {"role": "assistant", "content": "Paris"},
        "finish_reason": "stop",
        "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
        "tool_calls": [{"id": "t"}],
    }
    out = parse("vllm", fms, chat)
    assert (out.text, out.finish_reason, out.tool_calls) == ("Paris", "stop", [{"id": "t"}])
    assert out.message == {"role": "assistant", "content": "Paris"}
    # A chat deployment answering in a text-generation shape still works.
    assert parse("llama-chat", [{"0": "x"}], chat).text == "x"


def test_openai_answers() -> None:
    chat = {
        "id": "1",
        "model": "llama2-70b-chat",
        "choices": [
            {
                "index": 0,
                "finish_reason": "stop",
                "message": {"role": "assistant", "content": "No", "tool_calls": None},
            }
        ],
        "usage": {"prompt_tokens": 205, "completion_tokens": 5, "total_tokens": 210},
    }
    req = FormatRequest(api_type=S, messages=[{"role": "user", "content": "q"}])
    out = parse("openai", chat, req)
    assert (out.text, out.finish_reason, out.model, out.id) == (
        "No",
        "stop",
        "llama2-70b-chat",
        "1",
    )
    completion = {
        "id": "2",
        "model": "",
        "choices": [{"index": 0, "text": ", yes", "finish_reason": "length"}],
    }
    out = parse("openai", completion, FormatRequest(api_type=S, prompt="p"))
    assert (out.text, out.finish_reason, out.model) == (", yes", "length", None)


def test_vllm_error_inside_http_200_raises_the_reported_status() -> None:
    data = {"output": None, "error": {"status_code": 503, "body": "engine overloaded"}}
    with pytest.raises(ServerError) as info:
        parse("vllm", data)
    assert info.value.status_code == 503
    assert "engine overloaded" in info.value.body


def test_openai_error_object_raises_status_error() -> None:
    data = {"error": {"status": 429, "message": "slow down"}}
    with pytest.raises(APIStatusError) as info:
        parse("openai", data, FormatRequest(api_type=S, prompt="p"))
    assert info.value.status_code == 429


@pytest.mark.parametrize("key", ["vllm", "llama", "openai", "llama-chat"])
def test_empty_200_is_an_empty_response_error(key: str) -> None:
    api = S if key == "openai" else D
    with pytest.raises(EmptyResponseError, match="content-safety"):
        parse(key, {}, FormatRequest(api_type=api, prompt="p"))


@pytest.mark.parametrize(
    ("key", "data"),
    [
        ("llama", {"unexpected": 1}),
        ("gpt2", [{"label": "POSITIVE", "score": 0.9}]),
        ("openai", {"choices": []}),
        ("openai", {"choices": [{"index": 0}]}),
        ("openai", ["x"]),
        ("dolly", 42),
    ],
)
def test_mismatched_answer_names_formatter_api_type_and_body(key: str, data: Any) -> None:
    api = S if key == "openai" else D
    with pytest.raises(ResponseFormatError) as info:
        parse(key, data, FormatRequest(api_type=api, prompt="p"))
    err = info.value
    assert err.formatter == key
    assert err.api_type == str(api)
    assert json.dumps(data)[:20] in err.body
    assert key in str(err)


def test_invalid_json_is_a_format_error() -> None:
    with pytest.raises(ResponseFormatError, match="not valid JSON"):
        parse("llama", b'{"output": [')


@settings(max_examples=300, deadline=None)
@given(
    key=st.sampled_from([i.key for i in list_formatters()]),
    data=st.recursive(
        st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
        lambda children: (
            st.lists(children, max_size=4)
            | st.dictionaries(
                st.sampled_from(
                    [
                        "0",
                        "1",
                        "output",
                        "error",
                        "choices",
                        "message",
                        "text",
                        "generated_text",
                        "status_code",
                        "body",
                        "content",
                        "usage",
                        "details",
                        "finish_reason",
                    ]
                )
                | st.text(max_size=5),
                children,
                max_size=4,
            )
        ),
        max_leaves=12,
    ),
    chat=st.booleans(),
)
def test_arbitrary_json_only_raises_our_errors(key: str, data: Any, chat: bool) -> None:
    formatter = get_formatter(key)
    api = formatter.supported_api_types[0]
    req = (
        FormatRequest(api_type=api, messages=[{"role": "user", "content": "q"}])
        if chat and formatter.supports_chat
        else FormatRequest(api_type=api, prompt="p")
    )
    try:
        out, _ = decode_response(formatter, json.dumps(data).encode(), req)
    except AzmlError:
        return
    assert isinstance(out.text, str)


# -- seed API ----------------------------------------------------------------------------------


class SummarizationFormatter(ContentFormatterBase):
    """Written exactly like the seed's summarization example."""

    content_type = "application/json"
    accepts = "application/json"

    def format_request_payload(self, prompt, model_kwargs):  # type: ignore[no-untyped-def,override]
        input_str = json.dumps(
            {
                "inputs": [prompt],
                "parameters": model_kwargs,
                "options": {"use_cache": False, "wait_for_model": True},
            }
        )
        return str.encode(input_str)

    def format_response_payload(self, output):  # type: ignore[no-untyped-def,override]
        response_json = json.loads(output)
        return response_json[0]["summary_text"]


def test_seed_style_subclass_works_through_the_adapter() -> None:
    fmt = SummarizationFormatter()
    req = FormatRequest(api_type=D, prompt="long text", params={"max_length": 10})
    assert json.loads(encode_request(fmt, req)) == {
        "inputs": ["long text"],
        "parameters": {"max_length": 10},
        "options": {"use_cache": False, "wait_for_model": True},
    }
    out, data = decode_response(fmt, b'[{"summary_text": "short"}]', req)
    assert out.text == "short"
    assert data == [{"summary_text": "short"}]
    with pytest.raises(ResponseFormatError, match="KeyError"):
        decode_response(fmt, b'[{"other": 1}]', req)


def test_seed_three_argument_methods_get_the_api_type() -> None:
    seen: list[Any] = []

    class ThreeArgs(ContentFormatterBase):
        def format_request_payload(self, prompt, model_kwargs, api_type):  # type: ignore[no-untyped-def,override]
            seen.append(api_type)
            return json.dumps({"q": prompt}).encode()

        def format_response_payload(self, output, api_type):  # type: ignore[no-untyped-def,override]
            seen.append(api_type)
            return json.loads(output)["a"]

    fmt = ThreeArgs()
    req = FormatRequest(api_type=S, prompt="p")
    assert json.loads(encode_request(fmt, req)) == {"q": "p"}
    assert decode_response(fmt, b'{"a": "x"}', req)[0].text == "x"
    assert seen == [S, S]


def test_builtin_seed_methods_still_work() -> None:
    fmt = CustomOpenAIContentFormatter()
    payload = fmt.format_request_payload("hi", {"temperature": 0.2})
    assert json.loads(payload) == {
        "input_data": {"input_string": ["hi"], "parameters": {"temperature": 0.2}}
    }
    assert fmt.format_response_payload(b'[{"0": "there"}]') == "there"
    serverless = fmt.format_request_payload("hi", {}, ApiType.SERVERLESS)
    assert json.loads(serverless) == {"prompt": "hi"}
    assert fmt.content_type == "application/json" and fmt.accepts == "application/json"


@pytest.mark.parametrize(
    ("cls", "replacement"),
    [
        (OSSContentFormatter, "GPT2ContentFormatter"),
        (LlamaContentFormatter, "CustomOpenAIContentFormatter"),
        (LlamaChatContentFormatter, "CustomOpenAIChatContentFormatter"),
    ],
)
def test_deprecated_aliases_warn_and_name_the_replacement(cls: type, replacement: str) -> None:
    with pytest.warns(DeprecationWarning, match=replacement):
        fmt = cls()
    assert isinstance(fmt, ContentFormatterBase)


# -- registry ----------------------------------------------------------------------------------


def test_builtin_families_are_registered_with_api_types() -> None:
    infos = {i.key: i for i in list_formatters()}
    expected = {"gpt2", "dolly", "hf", "tgi", "llama", "llama-chat", "vllm", "bart", "openai"}
    assert expected <= set(infos)
    assert infos["openai"].api_types == ("serverless", "models", "openai_v1")
    assert infos["gpt2"].api_types == ("dedicated",)
    assert infos["llama-chat"].chat and not infos["gpt2"].chat
    assert get_formatter("Mistral") is get_formatter("llama")
    assert get_formatter("llama_chat") is get_formatter("llama-chat")


def test_unknown_family_lists_the_known_ones() -> None:
    with pytest.raises(ConfigurationError, match=r"unknown formatter 'nope'.*gpt2.*register"):
        get_formatter("nope")


def test_user_registers_a_new_family() -> None:
    class Echo(ContentFormatterBase):
        def build_request(self, request: FormatRequest) -> Any:
            return {"q": request.prompt}

        def parse_response(self, data: Any, request: FormatRequest) -> ParsedOutput:
            return ParsedOutput(text=data["a"])

    register_formatter("echo-family", Echo, aliases=["echo2"])
    try:
        assert isinstance(get_formatter("ECHO2"), Echo)
        with pytest.raises(ConfigurationError, match="already registered"):
            register_formatter("echo-family", Echo())
        register_formatter("echo-family", Echo(), replace=True)
        assert "echo-family" in {i.key for i in list_formatters()}
    finally:
        unregister_formatter("echo-family")
    with pytest.raises(ConfigurationError):
        get_formatter("echo2")


def test_registering_an_incomplete_formatter_is_refused() -> None:
    class Half(ContentFormatterBase):
        def build_request(self, request: FormatRequest) -> Any:
            return {}

    with pytest.raises(ConfigurationError, match="parse_response"):
        register_formatter("half", Half())
    with pytest.raises(ConfigurationError, match="ContentFormatterBase"):
        register_formatter("bad", object())  # type: ignore[arg-type]
