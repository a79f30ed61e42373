"""Our 422 bodies against FastAPI's, byte for byte.

The ground truth is a tiny FastAPI app whose handlers take MLflow's own installed pydantic
request models, exactly as MLflow's gateway declares its routes. Each invalid body goes to it
and to our decode + validate path; status and body must be identical.

Cases our deliberate differences change are left out of the table (see
gateway/schemas/mlflow_models.py):
- completions `prompt` that is not a string (a list, a number, null): we accept OpenAI's list
  forms and report the four-member union, MLflow reports `string_type`;
- a message `name` that is not a string (MLflow drops the key, we check and forward it);
- tool `function.parameters` that is not MLflow's FunctionParams shape (we take any object);
Cases where FastAPI itself fails with a 500 (it cannot render NaN/Infinity or non-UTF-8 bytes
in its error body) are left out too and pinned separately below.
"""

from __future__ import annotations

import copy
import json
import random
from typing import Any

import pytest
from fastapi import FastAPI, Request
from fastapi.testclient import TestClient
from mlflow.gateway.schemas import chat, completions, embeddings

from gateway.errors import GatewayError
from gateway.schemas.validation import decode_json_object, validate_payload

JSON = "application/json"
M = [{"role": "user", "content": "hi"}]
CHAT = {"messages": M}
COMPLETION = {"prompt": "hi"}


def _mlflow_app() -> TestClient:
    app = FastAPI()

    @app.post("/chat")
    async def chat_handler(request: Request, payload: chat.RequestPayload) -> dict[str, Any]:
        return {}

    @app.post("/completions")
    async def completions_handler(request: Request, payload: completions.RequestPayload) -> dict[str, Any]:
        return {}

    @app.post("/embeddings")
    async def embeddings_handler(request: Request, payload: embeddings.RequestPayload) -> dict[str, Any]:
        return {}

    return TestClient(app, raise_server_exceptions=False)


MLFLOW = _mlflow_app()
KINDS = {"chat": "llm/v1/chat", "completions": "llm/v1/completions", "embeddings": "llm/v1/embeddings"}


def mlflow_answer(kind: str, body: bytes, content_type: str | None) -> tuple[int, bytes]:
    headers = {"content-type": content_type} if content_type is not None else {}
    response = MLFLOW.post(f"/{kind}", content=body, headers=headers)
    return response.status_code, response.content if response.status_code != 200 else b""


def our_answer(kind: str, body: bytes, content_type: str | None) -> tuple[int, bytes]:
    try:
        validate_payload(decode_json_object(body, content_type), KINDS[kind])
    except GatewayError as exc:
        return exc.status, exc.body()
    return 200, b""


def encode(value: Any) -> bytes:
    return json.dumps(value).encode()


# the sampling parameters chat and completions share (spec §4.1), each set on a valid body
SAMPLING: list[dict[str, Any]] = [
    {"n": 0},
    {"n": -1},
    {"n": "two"},
    {"n": 1.5},
    {"n": None},
    {"n": [1]},
    {"n": 1e300},
    {"temperature": 3},
    {"temperature": -0.1},
    {"temperature": "hot"},
    {"temperature": 1e300},
    {"temperature": -1e-07},
    {"top_p": 1.5},
    {"top_p": -1},
    {"presence_penalty": -3},
    {"frequency_penalty": 2.5},
    {"presence_penalty": "x", "frequency_penalty": {}},
    {"max_tokens": 0},
    {"max_tokens": "many"},
    {"max_completion_tokens": 0},
    {"top_k": 0},
    {"top_k": 2.5},
    {"stop": "END"},
    {"stop": []},
    {"stop": [1, None]},
    {"stop": {"a": "b"}},
    {"stream": "maybe"},
    {"stream": 2},
    {"stream_options": "x"},
    {"stream_options": [1]},
    {"model": 5},
    {"model": ["m"]},
    {"response_format": "json"},
    {"response_format": {"type": "xml"}},
    {"response_format": {}},
    {"response_format": {"type": "json_schema", "json_schema": {"schema": {}}}},
    {"response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": "s"}}},
    {"response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": {}, "strict": None}}},
    {"response_format": {"type": "json_schema", "json_schema": "x"}},
    {"n": 0, "temperature": 5, "top_p": 2, "stop": "x"},
    {"n": "é", "model": "ünïcode", "temperature": "∞"},
]

CHAT_BODIES: list[Any] = [
    {},
    {"messages": []},
    {"messages": "hi"},
    {"messages": None},
    {"messages": {"role": "user"}},
    {"messages": ["hi", 5, None, [1]]},
    {"messages": [{"content": "no role"}]},
    {"messages": [{"role": 5, "content": 5}]},
    {"messages": [{"role": "user", "content": {"a": 1}}]},
    {"messages": [{"role": "user", "content": ["plain string in a list"]}]},
    {"messages": [{"role": "user", "content": [{"type": "video", "url": "x"}]}]},
    {"messages": [{"role": "user", "content": [{"text": "no type"}]}]},
    {"messages": [{"role": "user", "content": [{"type": 5, "text": "x"}]}]},
    {"messages": [{"role": "user", "content": [{"type": "text"}]}]},
    {"messages": [{"role": "user", "content": [{"type": "text", "text": 5}]}]},
    {"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": "http://x"}]}]},
    {
        "messages": [
            {"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x", "detail": "ultra"}}]}
        ]
    },
    {"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"detail": "low"}}]}]},
    {
        "messages": [
            {
                "role": "user",
                "content": [{"type": "input_audio", "input_audio": {"data": "x", "format": "ogg"}}],
            }
        ]
    },
    {"messages": [{"role": "user", "content": [{"type": "input_audio", "input_audio": {}}]}]},
    {
        "messages": [
            {"role": "user", "content": [{"type": "reasoning", "summary": [{"type": "other", "text": 1}]}]}
        ]
    },
    {"messages": [{"role": "user", "content": [{"type": "reasoning", "summary": "s"}]}]},
    {
        "messages": [
            {"role": "user", "content": [{"type": "text", "text": "ok"}, {"type": "text", "text": None}]}
        ]
    },
    {"messages": [{"role": "assistant", "tool_calls": "x"}]},
    {"messages": [{"role": "assistant", "tool_calls": [{"function": {"name": "f"}}]}]},
    {
        "messages": [
            {"role": "assistant", "tool_calls": [{"id": "1", "function": {"name": 5, "arguments": {}}}]}
        ]
    },
    {"messages": [{"role": "assistant", "tool_calls": [{"id": 1, "type": None, "function": None}]}]},
    {
        "messages": [
            {"role": "assistant", "tool_calls": [{"id": "1", "function": {}, "thought_signature": 7}]}
        ]
    },
    {"messages": [{"role": "assistant", "tool_calls": [5]}]},
    {"messages": [{"role": "tool", "content": "r", "refusal": 5, "tool_call_id": 5}]},
    {**CHAT, "tools": "x"},
    {**CHAT, "tools": [5]},
    {**CHAT, "tools": [{"type": "web"}]},
    {**CHAT, "tools": [{"function": {"name": "f"}}]},
    {**CHAT, "tools": [{"type": "function", "function": {"description": "no name"}}]},
    {**CHAT, "tools": [{"type": "function", "function": "f"}]},
    {**CHAT, "tools": [{"type": "function", "function": {"name": "f", "strict": "very", "description": 1}}]},
    {**CHAT, "tools": [{"type": "uc_function", "uc_function": {}}]},
    {**CHAT, "tools": [{"type": "uc_function", "uc_function": "fn"}]},
    {**CHAT, "tool_choice": "sometimes"},
    {**CHAT, "tool_choice": 5},
    {**CHAT, "tool_choice": {"type": "function"}},
    {**CHAT, "tool_choice": {"type": "tool", "function": {"name": "f"}}},
    {**CHAT, "tool_choice": {"type": "function", "function": {"name": 5}}},
    {"messages": [], "n": 0, "tools": "x", "tool_choice": "x"},
    *({**CHAT, **fields} for fields in SAMPLING),
]

COMPLETIONS_BODIES: list[Any] = [
    {},
    {"temperature": 0.5},
    {"prompt": "hi", "messages": "ignored extra", "n": 0},
    *({**COMPLETION, **fields} for fields in SAMPLING),
]

EMBEDDINGS_BODIES: list[Any] = [
    {},
    {"inputs": "typo"},
    {"input": {"a": 1}},
    {"input": None},
    {"input": 5},
    {"input": 1.5},
    {"input": True},
    {"input": [1, "a"]},
    {"input": ["a", 1]},
    {"input": [[1], ["a"]]},
    {"input": [[1, "x"], 2]},
    {"input": [[1.5]]},
    {"input": [1.5]},
    {"input": [None]},
    {"input": [{"a": 1}]},
    {"input": [[None]]},
    {"input": [["a"]]},
    {"input": [True, "a"]},
    {"input": {"é": 1e300}, "dimensions": "an extra"},
    {"input": [[1, 2], [3, "4x"]], "model": 5},
]

# bodies that are not a JSON object at all, or not JSON, or not sent as JSON: the same for every
# endpoint type
RAW: list[tuple[bytes, str | None]] = [
    (b"", JSON),
    (b"", None),
    (b"", "text/plain"),
    (b"{", JSON),
    (b'{"messages": [', JSON),
    (b'{"a":}', JSON),
    (b'{"a":1,}', JSON),
    (b"{} x", JSON),
    (b"  ", JSON),
    (b"{'a': 1}", JSON),
    (b'{"a": tru}', JSON),
    (b'{"a": "\x01"}', JSON),
    (b'{"a": "\\x"}', JSON),
    (b'{"a": 01}', JSON),
    (b'{"\xc3\xa9": [1, 2,', JSON),
    (b"[1, 2]", JSON),
    (b'"a string"', JSON),
    (b"null", JSON),
    (b"5", JSON),
    (b"true", JSON),
    (encode(CHAT), "text/plain"),
    (encode(CHAT), None),
    (encode(CHAT), "text/json"),
    (encode(CHAT), "application/json5"),
    (encode(CHAT), "application"),
    (encode(CHAT), "multipart/form-data; boundary=x"),
    (encode(CHAT), "application/x-www-form-urlencoded"),
    ("\u00e9t\u00e9".encode(), "text/plain"),
    (b'{"n": 0}', "application/json; charset=utf-8"),
    (b'{"n": 0}', "Application/JSON"),
    (b'{"n": 0}', " application/vnd.api+json ; x=y"),
    (b'{"n": 0', "application/problem+json"),
    (b"\xff\xfe{", JSON),
    (b'{"a": "\xff"}', JSON),
    (b"\xef\xbb\xbf{}", JSON),
    (b"\xef\xbb\xbf{", JSON),
    ('{"n": 0}'.encode("utf-16"), JSON),
    ('{"n": 0}'.encode("utf-16-le"), JSON),
    (b"[" * 5000 + b"]" * 5000, JSON),
]


def _cases() -> list[Any]:
    cases = []
    for kind, bodies in (
        ("chat", CHAT_BODIES),
        ("completions", COMPLETIONS_BODIES),
        ("embeddings", EMBEDDINGS_BODIES),
    ):
        cases += [pytest.param(kind, encode(body), JSON, id=f"{kind}-{i}") for i, body in enumerate(bodies)]
        cases += [pytest.param(kind, body, ct, id=f"{kind}-raw-{i}") for i, (body, ct) in enumerate(RAW)]
    return cases


@pytest.mark.parametrize(("kind", "body", "content_type"), _cases())
def test_same_answer_as_fastapi_with_mlflow_models(kind, body, content_type):
    expected = mlflow_answer(kind, body, content_type)
    assert expected[0] in (400, 422), expected  # the table holds invalid bodies only
    assert our_answer(kind, body, content_type) == expected


def test_the_table_is_large_enough():
    assert min(len(CHAT_BODIES), len(COMPLETIONS_BODIES), len(EMBEDDINGS_BODIES)) + len(RAW) >= 40


# -- the spec's literal examples (§4.9, §4.2) ---------------------------------------------------
def detail(body: bytes, kind: str = "chat", content_type: str | None = JSON) -> Any:
    status, raw = our_answer(kind, body, content_type)
    assert status == 422
    return json.loads(raw)["detail"]


def test_spec_examples():
    assert detail(b"{") == [
        {
            "type": "json_invalid",
            "loc": ["body", 1],
            "msg": "JSON decode error",
            "input": {},
            "ctx": {"error": "Expecting property name enclosed in double quotes"},
        }
    ]
    assert detail(b"") == [{"type": "missing", "loc": ["body"], "msg": "Field required", "input": None}]
    for content_type in ("text/plain", None):
        assert detail(b'{"messages": []}', content_type=content_type) == [
            {
                "type": "model_attributes_type",
                "loc": ["body"],
                "msg": "Input should be a valid dictionary or object to extract fields from",
                "input": '{"messages": []}',
            }
        ]
    assert detail(b"[1]")[0]["type"] == "model_attributes_type"
    assert detail(encode({"messages": []})) == [
        {
            "type": "too_short",
            "loc": ["body", "messages"],
            "msg": "List should have at least 1 item after validation, not 0",
            "input": [],
            "ctx": {"field_type": "List", "min_length": 1, "actual_length": 0},
        }
    ]
    assert detail(encode({**CHAT, "stop": "END"})) == [
        {"type": "list_type", "loc": ["body", "stop"], "msg": "Input should be a valid list", "input": "END"}
    ]


def test_an_object_as_embeddings_input_is_one_error_per_union_member():
    assert [(e["type"], e["loc"]) for e in detail(encode({"input": {"a": 1}}), "embeddings")] == [
        ("string_type", ["body", "input", "str"]),
        ("list_type", ["body", "input", "list[str]"]),
        ("list_type", ["body", "input", "list[int]"]),
        ("list_type", ["body", "input", "list[list[int]]"]),
    ]


def test_undecodable_body_is_fastapis_400():
    assert our_answer("chat", b'{"a": "\xff"}', JSON) == (
        400,
        b'{"detail":"There was an error parsing the body"}',
    )


# -- where FastAPI answers 500 we answer a 422 with JSON-safe values ------------------------------
def test_nan_and_infinity_are_read_as_python_json_reads_them():
    assert mlflow_answer("chat", b'{"messages": [], "temperature": NaN}', JSON)[0] == 500
    assert mlflow_answer("chat", b"1e400", JSON)[0] == 500
    assert detail(b"1e400")[0]["input"] is None
    (too_hot,) = detail(encode({**CHAT, "temperature": "x"}).replace(b'"x"', b"Infinity"))
    assert too_hot["type"] == "less_than_equal" and too_hot["input"] is None
    payload = decode_json_object(encode({**CHAT, "seed": "x"}).replace(b'"x"', b"NaN"), JSON)
    validate_payload(payload, "llm/v1/chat")  # accepted, as json.loads accepts it


def test_non_utf8_text_body_is_a_422():
    assert mlflow_answer("chat", b"\xff", "text/plain")[0] == 500
    assert detail(b"\xff", content_type="text/plain")[0]["input"] == "\ufffd"


# -- deliberate differences ----------------------------------------------------------------------
@pytest.mark.parametrize("prompt", ["s", ["a", "b"], [1, 2], [[1], [2, 3]], [[]]])
def test_completions_prompt_takes_openais_forms(prompt):
    validate_payload({"prompt": prompt}, "llm/v1/completions")


@pytest.mark.parametrize("prompt", [[], 5, None, [1, "a"], [None], {"a": 1}])
def test_bad_completions_prompt_lists_each_union_member(prompt):
    errors = detail(encode({"prompt": prompt}), "completions")
    assert [e["loc"][:3] for e in errors][0] == ["body", "prompt", "str"]
    assert {e["loc"][2] for e in errors} == {"str", "list[str]", "list[int]", "list[list[int]]"}


def test_empty_prompt_list_is_too_short():
    errors = detail(encode({"prompt": []}), "completions")
    assert errors[1] == {
        "type": "too_short",
        "loc": ["body", "prompt", "list[str]"],
        "msg": "List should have at least 1 item after validation, not 0",
        "input": [],
        "ctx": {"field_type": "List", "min_length": 1, "actual_length": 0},
    }


def test_message_name_and_free_tool_parameters():
    validate_payload(
        {
            "messages": [{"role": "user", "content": "x", "name": "ann"}],
            "tools": [{"type": "function", "function": {"name": "f", "parameters": {"anyOf": [{}]}}}],
        },
        "llm/v1/chat",
    )
    (error,) = detail(encode({"messages": [{"role": "user", "name": 5}]}))
    assert error["loc"] == ["body", "messages", 0, "name"] and error["type"] == "string_type"
    (error,) = detail(
        encode({**CHAT, "tools": [{"type": "function", "function": {"name": "f", "parameters": 1}}]})
    )
    assert error["loc"] == ["body", "tools", 0, "function", "parameters"] and error["type"] == "dict_type"


# -- lax coercion: what pydantic accepts is accepted, coerced -------------------------------------
def test_values_pydantic_coerces_are_accepted_and_written_back():
    message = {"role": "user", "content": "hi", "cache_control": {"type": "ephemeral"}}
    body = {
        "messages": [message],
        "n": "2",
        "max_tokens": 5.0,
        "temperature": "0.5",
        "stream": "true",
        "seed": "kept as sent",
        "response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": {}, "strict": 1}},
    }
    assert mlflow_answer("chat", encode(body), JSON)[0] == 200
    payload = decode_json_object(encode(body), JSON)
    validate_payload(payload, "llm/v1/chat")
    assert payload == {
        "messages": [message],  # nested keys MLflow's models drop are still forwarded
        "n": 2,
        "max_tokens": 5,
        "temperature": 0.5,
        "stream": True,
        "seed": "kept as sent",
        "response_format": {
            "type": "json_schema",
            "json_schema": {"name": "x", "schema": {}, "strict": True},
        },
    }
    assert type(payload["n"]) is int and type(payload["max_tokens"]) is int


def test_integral_floats_as_embedding_tokens_are_accepted():
    body = {"input": [1.0, 2.0], "dimensions": 8}
    assert mlflow_answer("embeddings", encode(body), JSON)[0] == 200
    payload = decode_json_object(encode(body), JSON)
    validate_payload(payload, "llm/v1/embeddings")
    assert payload == {"input": [1, 2], "dimensions": 8}


def test_valid_bodies_are_untouched_and_never_import_pydantic_twins():
    import subprocess
    import sys

    code = (
        "import sys\n"
        "from gateway.schemas.validation import decode_json_object, validate_payload\n"
        'p = decode_json_object(b\'{"messages": [{"role": "u", "content": "x"}], "n": 2}\', \'application/json\')\n'
        "validate_payload(p, 'llm/v1/chat')\n"
        "assert p == {'messages': [{'role': 'u', 'content': 'x'}], 'n': 2}\n"
        "validate_payload({'prompt': [[1, 2]]}, 'llm/v1/completions')\n"
        "validate_payload({'input': ['a']}, 'llm/v1/embeddings')\n"
        "assert 'gateway.schemas.mlflow_models' not in sys.modules\n"
        "assert 'pydantic' not in sys.modules, 'pydantic imported'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


# -- a seeded random walk around valid bodies: same answer as FastAPI every time -----------------
FULL_CHAT = {
    "messages": [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "t"},
                {"type": "image_url", "image_url": {"url": "u", "detail": "low"}},
                {"type": "input_audio", "input_audio": {"data": "d", "format": "wav"}},
                {"type": "reasoning", "summary": [{"type": "summary_text", "text": "s"}]},
            ],
        },
        {
            "role": "assistant",
            "tool_calls": [{"id": "1", "type": "function", "function": {"name": "f", "arguments": "{}"}}],
            "refusal": "r",
        },
        {"role": "tool", "tool_call_id": "1", "content": "c"},
    ],
    "tools": [
        {"type": "function", "function": {"name": "f", "description": "d", "strict": True}},
        {"type": "uc_function", "uc_function": {"name": "u"}},
    ],
    "tool_choice": {"type": "function", "function": {"name": "f"}},
    "n": 1,
    "stop": ["a"],
    "max_tokens": 1,
    "stream": False,
    "stream_options": {},
    "response_format": {"type": "json_schema", "json_schema": {"name": "n", "schema": {}, "strict": True}},
    "temperature": 1,
    "top_p": 0.5,
    "presence_penalty": 0,
    "top_k": 1,
}
MUTANTS: list[Any] = [
    None,
    True,
    0,
    -3,
    2.5,
    "",
    "x",
    "text",
    "auto",
    "wav",
    [],
    [1],
    ["a"],
    [[1]],
    {},
    {"a": 1},
]


def _mutate(rng: random.Random, body: Any) -> Any:
    body = copy.deepcopy(body)
    spots: list[tuple[Any, Any]] = []

    def walk(node: Any) -> None:
        items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
        for key, value in items:
            spots.append((node, key))
            walk(value)

    walk(body)
    if spots:
        node, key = rng.choice(spots)
        if isinstance(node, dict) and rng.random() < 0.25:
            del node[key]
        else:
            node[key] = copy.deepcopy(rng.choice(MUTANTS))
    return body


@pytest.mark.parametrize(
    ("kind", "seed"),
    [
        ("chat", FULL_CHAT),
        ("completions", {**COMPLETION, "n": 2, "stop": ["a"]}),
        ("embeddings", {"input": [[1]]}),
    ],
)
def test_random_mutations_answer_as_fastapi(kind, seed):
    rng = random.Random(422)
    for _ in range(150):
        body = seed
        for _ in range(rng.randint(1, 3)):
            body = _mutate(rng, body)
        if kind == "completions" and not isinstance(body.get("prompt", ""), str):
            continue  # a deliberate difference
        raw = encode(body)
        assert our_answer(kind, raw, JSON) == mlflow_answer(kind, raw, JSON), body
