"""A strict fake of Mistral's HTTP API, for end-to-end tests.

Request bodies are checked the way api.mistral.ai checks them:
  * against the request schemas of the published OpenAPI spec
    (tests/fixtures/mistral_request_schemas.json): unknown keys at any depth,
    types, enums and bounds are answered with HTTP 422 in Mistral's shape,
    {"object":"error","message":{"detail":[...]},"type":"invalid_request_error","param":null,"code":null},
    with pydantic-style `detail` entries;
  * then, for chat and agents completions, against the conversation rules that
    Mistral's serving validator (mistral-common) enforces: HTTP 400.

Answers come in the shapes the live service sends (see /work/shared/notes/mistral-answers.md). JSON is
compact. The CONTRACT, for /v1/chat/completions and /v1/agents/completions, JSON and `"stream": true`
(text/event-stream, events `data: <json>\n\n` spaced by `stream_interval`, then `data: [DONE]\n\n`; every
chunk is {"id","object":"chat.completion.chunk","created","model","choices":[{"index":0,"delta",
"finish_reason"}]}, the last one also with "usage"). "User text" is the text of the LAST user message
(string content or its text chunks); triggers are case-insensitive; the first that applies wins:

  1. Tool results: the last message has role "tool" -> never a tool call; the text is
     TOOL_RESULT_PREFIX + the contents of the tool messages after the last assistant message, joined with
     "; ", finish "stop". JSON: string content. Stream: {"role":"assistant","content":<piece>} deltas
     (2+ pieces), then {"content":""} with finish and usage.
  2. Tool calls: tool_choice naming a function calls it; user text containing "call every tool" calls every
     function of `tools` in order (parallel calls); tool_choice "any"/"required" or user text containing
     "call the tool" calls the first. Never with tool_choice "none" or without tools. Mistral's wire shape:
     each call {"id": 9 chars [A-Za-z0-9], "function": {"name", "arguments"}}, NO "type", NO "index".
     `arguments` is compact JSON made from the function's `parameters` schema (tool_arguments()): each
     property in `required` (in that order; when `required` is absent or empty, each property of
     `properties`) gets its first `enum` value, else by `type`: string "Paris", integer 3, number 1.5,
     boolean true, array [], object {} (a type list uses its first non-"null" type), else null.
     JSON: message {"role":"assistant","tool_calls":[...]} (no "content" key), finish "tool_calls".
     Stream: {"role":"assistant","content":""}, then ONE chunk with delta
     {"content":null,"tool_calls":[all calls]}, finish "tool_calls" and usage.
  3. Truncation: user text contains "run out of context" -> as the default, finish "model_length".
  4. Magistral: the model starts with "magistral". JSON content: [{"type":"thinking","thinking":[{"type":
     "text","text":REASONING_THINKING}],"closed":true},{"type":"text","text":REASONING_ANSWER}]. Stream:
     {"role":"assistant","content":""}; deltas [{"type":"thinking","thinking":[{"type":"text","text":<piece>}]}]
     (the pieces join to REASONING_THINKING); [{"type":"text","text":"3"}]; [{"type":"text","text":"91"}];
     then {"content":""} with finish "stop" and usage.
  5. Reasoning (mistral-small style): `reasoning_effort` set and not "none". JSON content as in 4. Stream:
     {"role":"assistant","content":""}; 2+ deltas, each an array with one thinking chunk (all pieces but the
     last); ONE delta [<thinking chunk of the last piece, "closed":true>,{"type":"text","text":"3"}]; then
     the STRING delta "91" with finish "stop" and usage in the same chunk.
  6. References: user text contains "with references" -> REFERENCES_ANSWER with a reference chunk. JSON
     content: [{"type":"text","text":"Paris is the capital"},{"type":"reference","reference_ids":[1]},
     {"type":"text","text":" of France."}]. Stream: {"role":"assistant","content":""}, then one array delta
     per chunk, then {"content":""} with finish "stop" and usage.
  7. Default: JSON message {"role":"assistant","content":"ok","tool_calls":null}, finish "stop"; stream
     {"role":"assistant","content":"tok0 "}, "tok1 ", ... (`stream_events` of them), then {"content":""}
     with finish "stop" and usage.
  JSON messages other than tool calls are {"role":"assistant","content":...,"tool_calls":null}; with `n`,
  every choice is the same answer (fresh tool call ids). FIM (/v1/fim/completions) answers as the default,
  with finish "model_length" when `prompt` contains "run out of context".

Request headers that shape the answer (none is ever required):
  * x-fake-error: NAME (checked before anything else, validation included; any path), see FAKE_ERRORS:
      422-object  422 {"object":"error","message":{"detail":[<extra_forbidden at body.messages.1.content,
                  input "x">,<missing body.model, input {}>]},"type":"invalid_request_error","param":null,
                  "code":null}
      422-detail  422 {"detail":[<the same two entries>]}
      401-message 401 {"message":"Unauthorized","request_id":"<32 hex>"}
      401-detail  401 {"detail":"Unauthorized"}
      429-message 429 {"message":"Requests rate limit exceeded"}
      429-object  429 {"object":"error","message":"Rate limit exceeded","type":"rate_limited","param":null,
                  "code":"1300","raw_status_code":429}
      stream-error 200 event stream: a role delta chunk, then the event STREAM_ERROR
                  {"object":"error","message":"Internal server error","type":"internal_server_error",
                  "param":null,"code":"3000"}, then the end of the body (no [DONE]).
    An unknown NAME is answered 400.
  * x-fake-status: N forces status N with a Mistral-style error body (after x-fake-error).
  * x-fake-retry-after: VALUE: the answer carries `Retry-After: VALUE`, sent as given (delay seconds, an
    HTTP date, or junk to test junk), whatever its status; with x-fake-status: 429 (or x-fake-error:
    429-object) it makes one 429 with that Retry-After. In rate-limit mode such a 429 also holds the key
    at the fake until the time it names has passed (seconds or HTTP date; junk holds nothing).
  * x-fake-sse: crlf-split: streams use "\r\n" line ends, send ": keep-alive\r\n\r\n" before the first
    event, and write every event (the [DONE] one too) in two network writes cut in the middle of its
    payload, SPLIT_PAUSE (5 ms) apart.
  * x-fake-encoding: gzip | deflate | br | zstd (or identity): the answer body gets that Content-Encoding:
    JSON and error answers compressed whole; streams compressed with a streaming compressor flushed after
    every network write (zlib Z_SYNC_FLUSH, brotli flush(), zstd FLUSH_BLOCK), so they still stream.
    An unknown value of x-fake-sse or x-fake-encoding is answered 400.

Rate-limit mode (opt-in, off by default), like Mistral's free tier: FakeMistral(rate_limit=N) or, for a
running fake, `fake.rate_limit = N` (requests per second per API key; None turns it off). A request
arriving less than 1/N s after the previous ACCEPTED request on its key, or while its key is held (see
x-fake-retry-after), is answered 429 with RATE_LIMITED_BODY, before any other check (x-fake-* triggers
included). A request that passes the limiter is accepted whatever its answer (a forced 429 included).
The key is the credential of `Authorization` ("Bearer k1" -> "k1"), else `x-api-key`, else "" (one shared
bucket). OPTIONS requests are never limited nor counted. Arrival times (time.monotonic() of this
process, taken when the request's headers have been read) are recorded per key in every mode:
fake.arrivals(key) -> [Arrival(at, path, accepted)], fake.arrival_times(key) -> accepted times,
fake.gaps(key) -> the seconds between consecutive accepted arrivals, fake.limited(key) -> how many were
refused. clear() forgets them, and the limiter's state.

Exported constants: REASONING_THINKING, REASONING_ANSWER, REFERENCES_ANSWER, TOOL_RESULT_PREFIX,
TOOL_CALL_TRIGGER, EVERY_TOOL_TRIGGER, REFERENCES_TRIGGER, TRUNCATION_TRIGGER, FAKE_ERRORS, STREAM_ERROR,
RATE_LIMITED_BODY.

Run standalone:  python tests/fake_mistral.py --port 8090 [--tls]
"""

from __future__ import annotations

import argparse
import base64
import copy
import email.utils
import functools
import gzip
import hashlib
import http.client
import json
import random
import re
import shutil
import signal
import socket
import socketserver
import ssl
import string
import struct
import sys
import tempfile
import threading
import time
import uuid
import zlib
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import brotli
import jsonschema
import trustme
from jsonschema import Draft202012Validator, ValidationError

SCHEMA_FILE = Path(__file__).resolve().parent / "fixtures" / "mistral_request_schemas.json"
HOST = "127.0.0.1"

CHAT_PATHS = ("/v1/chat/completions", "/v1/agents/completions")
TOOL_CALL_ID = re.compile(r"^[a-zA-Z0-9]{9}$")
FUNCTION_NAME = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")


# ---------------------------------------------------------------------------
# Error bodies


def error_body(message, type_="invalid_request_error", code=None) -> dict:
    return {"object": "error", "message": message, "type": type_, "param": None, "code": code}


def detail_body(details: list) -> dict:
    return error_body({"detail": details})


def _detail(type_, loc, msg, input_, ctx=None) -> dict:
    entry = {"type": type_, "loc": list(loc), "msg": msg, "input": input_}
    if ctx is not None:
        entry["ctx"] = ctx
    return entry


class Rejected(Exception):
    """A Mistral 400 answer: (message, error type, error code)."""

    def __init__(self, message, type_="invalid_request_error", code=None):
        super().__init__(message)
        self.body = error_body(message, type_, code)


def _structure_error(message) -> Rejected:
    return Rejected(message, "invalid_request_message_order", "3230")


def _function_call_error(message) -> Rejected:
    return Rejected(message, "invalid_function_call", "3280")


# ---------------------------------------------------------------------------
# Schemas and a Draft 2020-12 validator that honours OpenAPI discriminators


@functools.lru_cache(maxsize=None)
def _schema_document() -> dict:
    return json.loads(SCHEMA_FILE.read_text(encoding="utf-8"))


def endpoint_paths() -> tuple:
    return tuple(_schema_document()["endpoints"])


def _one_of(validator, one_of, instance, schema):
    """oneOf, dispatched on the discriminator tag like pydantic's tagged unions."""
    disc = schema.get("discriminator")
    if not disc:
        yield from Draft202012Validator.VALIDATORS["oneOf"](validator, one_of, instance, schema)
        return
    tag = instance.get(disc["propertyName"]) if isinstance(instance, dict) else None
    target = disc["mapping"].get(tag) if isinstance(tag, str) else None
    if target is None:
        yield ValidationError("discriminator", validator="discriminator", validator_value=disc)
        return
    yield from validator.descend(instance, {"$ref": target}, path=tag, schema_path=tag)


def _nullable(keyword):
    """OpenAPI 3.0 `nullable: true` lets null through type/enum/const checks."""
    base = Draft202012Validator.VALIDATORS[keyword]

    def check(validator, value, instance, schema):
        if instance is None and schema.get("nullable") is True:
            return
        yield from base(validator, value, instance, schema)

    return check


_MistralValidator = jsonschema.validators.extend(
    Draft202012Validator,
    {"oneOf": _one_of, "type": _nullable("type"), "enum": _nullable("enum"), "const": _nullable("const")},
)


@functools.lru_cache(maxsize=None)
def _validator_for(path: str):
    doc = _schema_document()
    root = dict(doc["endpoints"][path], components=doc["components"])
    return _MistralValidator(root, format_checker=jsonschema.FormatChecker(formats=("uuid",)))


# ---------------------------------------------------------------------------
# jsonschema errors -> pydantic-style `detail` entries

_TYPE_ERRORS = {
    "string": ("string_type", "Input should be a valid string"),
    "integer": ("int_type", "Input should be a valid integer"),
    "number": ("float_type", "Input should be a valid number"),
    "boolean": ("bool_type", "Input should be a valid boolean"),
    "object": ("dict_type", "Input should be a valid dictionary"),
    "array": ("list_type", "Input should be a valid list"),
    "null": ("none_required", "Input should be None"),
}
_BOUNDS = {
    "maximum": ("less_than_equal", "less than or equal to", "le"),
    "minimum": ("greater_than_equal", "greater than or equal to", "ge"),
    "exclusiveMaximum": ("less_than", "less than", "lt"),
    "exclusiveMinimum": ("greater_than", "greater than", "gt"),
}


def _expected(values) -> str:
    shown = [repr(v) for v in values]
    return shown[0] if len(shown) == 1 else ", ".join(shown[:-1]) + " or " + shown[-1]


def _loc(error) -> list:
    return ["body", *error.absolute_path]


def _root_type_mismatch(errors) -> bool:
    return any(e.validator == "type" and not e.relative_path for e in errors)


def _is_null_branch(errors) -> bool:
    return any(e.validator == "type" and e.validator_value == "null" for e in errors)


def _union_errors(error) -> list:
    """Keep the errors of the union branches whose type fits the input."""
    branches = {}
    for sub in error.context:
        branches.setdefault(sub.relative_schema_path[0], []).append(sub)
    fitting = [errs for errs in branches.values() if not _root_type_mismatch(errs)]
    if fitting:
        return [d for errs in fitting for sub in errs for d in _to_details(sub)]
    non_null = [errs for errs in branches.values() if not _is_null_branch(errs)]
    return [d for errs in non_null for sub in errs for d in _to_details(sub)]


def _tags_in_union_order(disc: dict, one_of: list) -> list:
    by_target = {target: tag for tag, target in disc["mapping"].items()}
    ordered = [by_target[branch["$ref"]] for branch in one_of if branch.get("$ref") in by_target]
    return ordered + [tag for tag in disc["mapping"] if tag not in ordered]


def _discriminator_errors(error) -> list:
    disc, instance, loc = error.validator_value, error.instance, _loc(error)
    name = disc["propertyName"]
    if not isinstance(instance, dict):
        msg = "Input should be a valid dictionary or object to extract fields from"
        return [_detail("model_attributes_type", loc, msg, instance)]
    if name not in instance:
        msg = f"Unable to extract tag using discriminator '{name}'"
        return [_detail("union_tag_not_found", loc, msg, instance, {"discriminator": f"'{name}'"})]
    tags = ", ".join(f"'{t}'" for t in _tags_in_union_order(disc, error.schema.get("oneOf", [])))
    ctx = {"discriminator": f"'{name}'", "tag": str(instance[name]), "expected_tags": tags}
    msg = f"Input tag '{instance[name]}' found using '{name}' does not match any of the expected tags: {tags}"
    return [_detail("union_tag_invalid", loc, msg, instance, ctx)]


def _to_details(error) -> list:
    kind, value, instance, loc = error.validator, error.validator_value, error.instance, _loc(error)
    if kind == "additionalProperties":
        known = error.schema.get("properties", {})
        return [
            _detail("extra_forbidden", loc + [key], "Extra inputs are not permitted", instance[key])
            for key in instance
            if key not in known
        ]
    if kind == "required":
        return [_detail("missing", loc + [key], "Field required", instance) for key in value if key not in instance]
    if kind in ("anyOf", "oneOf"):
        return _union_errors(error)
    if kind == "discriminator":
        return _discriminator_errors(error)
    if kind == "type":
        types = [value] if isinstance(value, str) else [t for t in value if t != "null"] or list(value)
        type_, msg = _TYPE_ERRORS.get(types[0], ("type_error", error.message))
        return [_detail(type_, loc, msg, instance)]
    if kind in ("enum", "const"):
        values = value if kind == "enum" else [value]
        expected = _expected(values)
        type_ = "enum" if kind == "enum" else "literal_error"
        return [_detail(type_, loc, f"Input should be {expected}", instance, {"expected": expected})]
    if kind in _BOUNDS:
        type_, words, key = _BOUNDS[kind]
        return [_detail(type_, loc, f"Input should be {words} {value}", instance, {key: value})]
    if kind == "minItems":
        msg = f"List should have at least {value} item{'s' if value != 1 else ''} after validation, not {len(instance)}"
        ctx = {"field_type": "List", "min_length": value, "actual_length": len(instance)}
        return [_detail("too_short", loc, msg, instance, ctx)]
    if kind == "format" and value == "uuid":
        return [_detail("uuid_parsing", loc, "Input should be a valid UUID", instance)]
    return [_detail("value_error", loc, error.message, instance)]


def _dedupe(details: list) -> list:
    seen, unique = set(), []
    for entry in details:
        key = (entry["type"], json.dumps(entry["loc"]))
        if key not in seen:
            seen.add(key)
            unique.append(entry)
    return unique


def schema_errors(path: str, body) -> list:
    """pydantic-style detail entries for `body` against the endpoint's schema."""
    errors = _validator_for(path).iter_errors(body)
    return _dedupe([d for error in errors for d in _to_details(error)])


# ---------------------------------------------------------------------------
# JSON parsing, the way FastAPI reports it


class _BadJson(Exception):
    def __init__(self, detail: dict):
        super().__init__(detail["msg"])
        self.detail = detail


def _no_constants(name):
    raise ValueError(f"{name} is not a valid JSON value")


def _json_invalid(position: int, reason: str) -> _BadJson:
    return _BadJson(_detail("json_invalid", ["body", position], "JSON decode error", {}, {"error": reason}))


def parse_json_body(body: bytes) -> dict:
    if not body.strip():
        raise _BadJson(_detail("missing", ["body"], "Field required", None))
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise _json_invalid(exc.start, "Invalid UTF-8") from None
    try:
        data = json.loads(text, parse_constant=_no_constants)
    except json.JSONDecodeError as exc:
        raise _json_invalid(exc.pos, exc.msg) from None
    except ValueError as exc:
        raise _json_invalid(0, str(exc)) from None
    if not isinstance(data, dict):
        msg = "Input should be a valid dictionary or object to extract fields from"
        raise _BadJson(_detail("model_attributes_type", ["body"], msg, data))
    return data


# ---------------------------------------------------------------------------
# Conversation rules of mistral-common's serving validator (tokenizer v13+),
# checked in the same order. Not enforced: the role-order rules and the
# "same number of function calls and responses" rule.


def _bad_tool_call_id(call_id) -> str:
    return f"Tool call id was {call_id} but must be a-z, A-Z, 0-9, with a length of 9."


def _bad_function_name(name) -> str:
    return (
        f"Function name was {name} but must be a-z, A-Z, 0-9, "
        "or contain underscores and dashes, with a maximum length of 64."
    )


def _check_structure(messages: list) -> None:
    if not messages:
        raise _structure_error("Conversation must have at least one message")
    if len(messages) == 1 and messages[0]["role"] not in ("user", "system"):
        raise _structure_error("Conversation must start with a user message or system message")
    last = messages[-1]
    if len(messages) > 1 and last["role"] == "assistant" and not last.get("prefix"):
        raise _structure_error(
            "Expected last role User or Tool (or Assistant with prefix or continue_final_message "
            "set to True) for serving but got assistant"
        )


def _check_tool_results(messages: list) -> None:
    """Each tool result answers a call of the latest assistant message, once."""
    expected, observed = set(), set()
    for message in messages:
        if message["role"] == "assistant":
            expected, observed = set(), set()
            for call in message.get("tool_calls") or []:
                call_id = call.get("id", "null")
                if call_id in expected:
                    raise _structure_error(f"Duplicate tool call id {call_id} in assistant message")
                expected.add(call_id)
        elif message["role"] == "tool":
            call_id = message.get("tool_call_id")
            if call_id in observed:
                raise _structure_error(f"Duplicate tool call id {call_id} in tool results")
            if call_id not in expected:
                raise _structure_error(f"Unexpected tool call id {call_id} in tool results")
            observed.add(call_id)


def _check_assistant(message: dict, is_last: bool) -> None:
    calls = message.get("tool_calls") or []
    if not message.get("content") and not calls:
        raise Rejected("Assistant message must have either content or tool_calls, but not none.")
    for call in calls:
        call_id = call.get("id", "null")
        if call_id == "null":
            raise _function_call_error("Tool call id has to be defined in serving mode.")
        if not TOOL_CALL_ID.fullmatch(call_id):
            raise _function_call_error(_bad_tool_call_id(call_id))
        if not FUNCTION_NAME.fullmatch(call["function"]["name"]):
            raise _function_call_error(_bad_function_name(call["function"]["name"]))
    if message.get("prefix") and not is_last:
        raise Rejected("Assistant message with prefix True must be last message")


def _check_tool_message(message: dict) -> None:
    name = message.get("name")
    if name is not None and not FUNCTION_NAME.fullmatch(name):
        raise _function_call_error(_bad_function_name(name))
    call_id = message.get("tool_call_id")
    if call_id is None:
        raise Rejected("Tool call id has to be defined.")
    if not TOOL_CALL_ID.fullmatch(call_id):
        raise _function_call_error(_bad_tool_call_id(call_id))


def _check_tools(tools: list) -> None:
    for tool in tools:
        name = tool["function"]["name"] if tool.get("type") == "function" else None
        if name is not None and not FUNCTION_NAME.fullmatch(name):
            raise Rejected(_bad_function_name(name))


def check_conversation(data: dict) -> None:
    """Raise Rejected when a schema-valid chat body breaks Mistral's conversation rules."""
    messages = data["messages"]
    _check_structure(messages)
    _check_tool_results(messages)
    for index, message in enumerate(messages):
        if message["role"] == "assistant":
            _check_assistant(message, is_last=index == len(messages) - 1)
        elif message["role"] == "tool":
            _check_tool_message(message)
    _check_tools(data.get("tools") or [])


def validate(path: str, body: bytes):
    """None when Mistral would accept `body` on `path`, else (status, error JSON)."""
    route = path.split("?", 1)[0]
    if route not in endpoint_paths():
        return 404, error_body("Not Found")
    try:
        data = parse_json_body(body)
    except _BadJson as exc:
        return 422, detail_body([exc.detail])
    details = schema_errors(route, data)
    if details:
        return 422, detail_body(details)
    if route in CHAT_PATHS:
        try:
            check_conversation(data)
        except Rejected as exc:
            return 400, exc.body
    return None


# ---------------------------------------------------------------------------
# Successful answers

AGENT_MODEL = "mistral-medium-latest"
COMPLETION_PATHS = CHAT_PATHS + ("/v1/fim/completions",)
MODERATION_CATEGORIES = (
    "sexual",
    "hate_and_discrimination",
    "violence_and_threats",
    "dangerous_and_criminal_content",
    "selfharm",
    "health",
    "financial",
    "law",
    "pii",
)
MODELS = (
    "mistral-large-latest",
    "mistral-medium-latest",
    "mistral-small-latest",
    "codestral-latest",
    "mistral-embed",
    "mistral-moderation-latest",
    "mistral-ocr-latest",
)


def _new_id() -> str:
    return uuid.uuid4().hex


def _model(data: dict) -> str:
    return data.get("model") or AGENT_MODEL


def _usage(data: dict, completion_tokens: int) -> dict:
    prompt_tokens = max(1, len(json.dumps(data)) // 4)
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
    }


TOOL_CALL_TRIGGER = "call the tool"
EVERY_TOOL_TRIGGER = "call every tool"
REFERENCES_TRIGGER = "with references"
TRUNCATION_TRIGGER = "run out of context"

REASONING_THINKING = "17 * 23: 17 * 20 = 340, 17 * 3 = 51, 340 + 51 = 391."
REASONING_ANSWER = "391"
REFERENCES_ANSWER = "Paris is the capital of France."
TOOL_RESULT_PREFIX = "Tool results: "

_REFERENCE_CHUNKS = (
    {"type": "text", "text": "Paris is the capital"},
    {"type": "reference", "reference_ids": [1]},
    {"type": "text", "text": " of France."},
)
_ARGUMENT_VALUES = {"string": "Paris", "integer": 3, "number": 1.5, "boolean": True, "array": [], "object": {}}
_TOOL_ID_ALPHABET = string.ascii_letters + string.digits


def _text_of(content) -> str:
    if isinstance(content, str):
        return content
    return "".join(c.get("text") or "" for c in content or [] if isinstance(c, dict) and c.get("type") == "text")


def _user_text(data: dict) -> str:
    """The text of the last user message (string content or its text chunks)."""
    users = [m for m in data.get("messages") or [] if m.get("role") == "user"]
    return _text_of(users[-1].get("content")) if users else ""


def _tools_to_call(data: dict) -> list:
    """The functions the answer calls, in order, or []: a named tool_choice calls that function;
    "call every tool" in the user text calls every function; tool_choice any/required or "call the tool"
    calls the first. Never with tool_choice none, nor when the last message is a tool result."""
    functions = [t["function"] for t in data.get("tools") or [] if t.get("type", "function") == "function"]
    choice = data.get("tool_choice")
    messages = data.get("messages") or []
    if not functions or choice == "none" or (messages and messages[-1].get("role") == "tool"):
        return []
    if isinstance(choice, dict):
        return [next((f for f in functions if f["name"] == choice["function"]["name"]), functions[0])]
    text = _user_text(data).lower()
    if EVERY_TOOL_TRIGGER in text:
        return functions
    if choice in ("any", "required") or TOOL_CALL_TRIGGER in text:
        return functions[:1]
    return []


def _argument_value(schema):
    schema = schema if isinstance(schema, dict) else {}
    enum = schema.get("enum")
    if isinstance(enum, list) and enum:
        return enum[0]
    type_ = schema.get("type")
    if isinstance(type_, list):  # ["string", "null"]: the first non-null type
        type_ = next((t for t in type_ if t != "null"), None)
    return copy.copy(_ARGUMENT_VALUES.get(type_)) if isinstance(type_, str) else None


def tool_arguments(parameters) -> str:
    """The compact JSON arguments the fake passes to a function with this `parameters` JSON schema."""
    schema = parameters if isinstance(parameters, dict) else {}
    properties = schema.get("properties") if isinstance(schema.get("properties"), dict) else {}
    required = schema.get("required") if isinstance(schema.get("required"), list) else None
    names = required or list(properties)
    args = {name: _argument_value(properties.get(name)) for name in names if isinstance(name, str)}
    return json.dumps(args, separators=(",", ":"))


def _tool_call(function: dict) -> dict:
    """One call in Mistral's wire shape: no `type`, no `index`."""
    call_id = "".join(random.choices(_TOOL_ID_ALPHABET, k=9))
    return {
        "id": call_id,
        "function": {"name": function["name"], "arguments": tool_arguments(function.get("parameters"))},
    }


def _tool_result_text(messages: list) -> str:
    """TOOL_RESULT_PREFIX + the contents of the tool messages after the last assistant message."""
    start = max((i for i, m in enumerate(messages) if m.get("role") == "assistant"), default=-1) + 1
    results = [_text_of(m.get("content")) for m in messages[start:] if m.get("role") == "tool"]
    return TOOL_RESULT_PREFIX + "; ".join(results)


@dataclass(frozen=True)
class _Plan:
    """What a completion answers: kind is text, tool_result, tools, reasoning, magistral or references."""

    kind: str
    finish: str = "stop"
    text: str = "ok"
    functions: tuple = ()


def _plan(data: dict) -> _Plan:
    """The answer's kind, by the triggers in the module docstring, first match wins."""
    if "messages" not in data:  # FIM
        truncated = TRUNCATION_TRIGGER in str(data.get("prompt") or "").lower()
        return _Plan("text", finish="model_length" if truncated else "stop")
    messages = data["messages"]
    if messages and messages[-1].get("role") == "tool":
        return _Plan("tool_result", text=_tool_result_text(messages))
    functions = _tools_to_call(data)
    if functions:
        return _Plan("tools", finish="tool_calls", functions=tuple(functions))
    text = _user_text(data).lower()
    if TRUNCATION_TRIGGER in text:
        return _Plan("text", finish="model_length")
    if str(data.get("model") or "").startswith("magistral"):
        return _Plan("magistral", text=REASONING_ANSWER)
    if data.get("reasoning_effort") not in (None, "none"):
        return _Plan("reasoning", text=REASONING_ANSWER)
    if REFERENCES_TRIGGER in text:
        return _Plan("references", text=REFERENCES_ANSWER)
    return _Plan("text")


def _thinking(text: str, closed: bool = False) -> dict:
    chunk = {"type": "thinking", "thinking": [{"type": "text", "text": text}]}
    if closed:
        chunk["closed"] = True
    return chunk


def _message(plan: _Plan) -> dict:
    if plan.kind == "tools":
        return {"role": "assistant", "tool_calls": [_tool_call(f) for f in plan.functions]}
    if plan.kind in ("reasoning", "magistral"):
        content = [_thinking(REASONING_THINKING, closed=True), {"type": "text", "text": REASONING_ANSWER}]
    elif plan.kind == "references":
        content = copy.deepcopy(list(_REFERENCE_CHUNKS))
    else:
        content = plan.text
    return {"role": "assistant", "content": content, "tool_calls": None}


def chat_completion(data: dict) -> dict:
    """The JSON answer to a valid, non-streamed chat, agents or FIM completion."""
    plan = _plan(data)
    choices = [{"index": i, "message": _message(plan), "finish_reason": plan.finish} for i in range(data.get("n") or 1)]
    return {
        "id": _new_id(),
        "object": "chat.completion",
        "created": int(time.time()),
        "model": _model(data),
        "choices": choices,
        "usage": _usage(data, 1),
    }


def _pieces(text: str, count: int) -> list:
    """`text` cut into `count` non-empty pieces (fewer when the text is shorter)."""
    count = max(1, min(count, len(text)))
    return [text[len(text) * i // count : len(text) * (i + 1) // count] for i in range(count)]


def _deltas(plan: _Plan, events: int) -> list:
    """[(delta, finish_reason), ...]; the last one carries the finish reason (and gets the usage)."""
    role = ({"role": "assistant", "content": ""}, None)
    final = ({"content": ""}, plan.finish)
    if plan.kind == "tools":
        calls = [_tool_call(f) for f in plan.functions]
        return [role, ({"content": None, "tool_calls": calls}, plan.finish)]
    if plan.kind == "text":
        return [({"role": "assistant", "content": f"tok{i} "}, None) for i in range(events)] + [final]
    if plan.kind == "tool_result":
        pieces = _pieces(plan.text, max(2, events))
        return [({"role": "assistant", "content": p}, None) for p in pieces] + [final]
    if plan.kind == "references":
        return [role] + [({"content": [dict(c)]}, None) for c in copy.deepcopy(_REFERENCE_CHUNKS)] + [final]
    thoughts = _pieces(REASONING_THINKING, max(3, events))
    if plan.kind == "magistral":
        answer_deltas = [({"content": [{"type": "text", "text": t}]}, None) for t in ("3", "91")]
        return [role] + [({"content": [_thinking(t)]}, None) for t in thoughts] + answer_deltas + [final]
    mixed = [_thinking(thoughts[-1], closed=True), {"type": "text", "text": "3"}]
    return (
        [role]
        + [({"content": [_thinking(t)]}, None) for t in thoughts[:-1]]
        + [({"content": mixed}, None), ({"content": "91"}, plan.finish)]
    )


def _chunk_head(data: dict) -> dict:
    return {"id": _new_id(), "object": "chat.completion.chunk", "created": int(time.time()), "model": _model(data)}


def chat_chunks(data: dict, events: int):
    """The chunk objects of a streamed completion, the last one with the finish reason and usage."""
    head = _chunk_head(data)
    deltas = _deltas(_plan(data), events)
    for number, (delta, finish) in enumerate(deltas, 1):
        chunk = dict(head, choices=[{"index": 0, "delta": delta, "finish_reason": finish}])
        if number == len(deltas):
            chunk["usage"] = _usage(data, max(1, len(deltas) - 1))
        yield chunk


def _vector(text: str, size: int) -> list:
    digest = b""
    while len(digest) < size:
        digest += hashlib.sha256(f"{len(digest)}:{text}".encode()).digest()
    return [round((b - 128) / 256, 4) for b in digest[:size]]


def embeddings(data: dict) -> dict:
    inputs = [data["input"]] if isinstance(data["input"], str) else data["input"]
    size = data.get("output_dimension") or 8
    items = []
    for index, text in enumerate(inputs):
        vector = _vector(text, size)
        if data.get("encoding_format") == "base64":
            vector = base64.b64encode(struct.pack(f"<{size}f", *vector)).decode()
        items.append({"object": "embedding", "index": index, "embedding": vector})
    return {"id": _new_id(), "object": "list", "data": items, "model": data["model"], "usage": _usage(data, 0)}


def _moderation_result() -> dict:
    return {
        "categories": {c: False for c in MODERATION_CATEGORIES},
        "category_scores": {c: 0.001 for c in MODERATION_CATEGORIES},
    }


def _classification_result() -> dict:
    return {"intent": {"scores": {"ok": 0.9, "other": 0.1}}}


def _count(inputs, single) -> int:
    """How many items an `input` holds: one when it is a single item."""
    return 1 if single(inputs) else len(inputs)


def moderations(data: dict, result, single) -> dict:
    results = [result() for _ in range(_count(data["input"], single))]
    return {"id": _new_id(), "model": data["model"], "results": results}


def ocr(data: dict) -> dict:
    page = {"index": 0, "markdown": "ok", "images": [], "dimensions": {"dpi": 200, "height": 2200, "width": 1700}}
    return {
        "pages": [page],
        "model": data.get("model") or "mistral-ocr-latest",
        "document_annotation": None,
        "usage_info": {"pages_processed": 1, "doc_size_bytes": None},
    }


def models_list() -> dict:
    created = int(time.time())
    data = [{"id": m, "object": "model", "created": created, "owned_by": "mistralai"} for m in MODELS]
    return {"object": "list", "data": data}


_ANSWERS = {
    "/v1/embeddings": embeddings,
    "/v1/moderations": lambda d: moderations(d, _moderation_result, lambda x: isinstance(x, str)),
    "/v1/classifications": lambda d: moderations(d, _classification_result, lambda x: isinstance(x, str)),
    "/v1/chat/moderations": lambda d: moderations(d, _moderation_result, lambda x: not x or isinstance(x[0], dict)),
    "/v1/chat/classifications": lambda d: moderations(d, _classification_result, lambda x: isinstance(x, dict)),
    "/v1/ocr": ocr,
}


def answer(route: str, data: dict) -> dict:
    """The JSON answer to a valid, non-streamed request."""
    if route in COMPLETION_PATHS:
        return chat_completion(data)
    return _ANSWERS[route](data)


_STATUS_ERRORS = {429: ("Rate limit exceeded", "rate_limited", "1300")}


def status_error(status: int) -> dict:
    """A Mistral-style error body for a status forced with `x-fake-status`."""
    default_type = "invalid_request_error" if status < 500 else "internal_server_error"
    message, type_, code = _STATUS_ERRORS.get(status, (http.client.responses.get(status, "Error"), default_type, None))
    return error_body(message, type_, code)


_ERROR_DETAILS = (
    {
        "type": "extra_forbidden",
        "loc": ["body", "messages", 1, "content"],
        "msg": "Extra inputs are not permitted",
        "input": "x",
    },
    {"type": "missing", "loc": ["body", "model"], "msg": "Field required", "input": {}},
)
STREAM_ERROR = {
    "object": "error",
    "message": "Internal server error",
    "type": "internal_server_error",
    "param": None,
    "code": "3000",
}
# x-fake-error NAME -> (status, a function making the body); "stream-error" is a 200 event stream instead
FAKE_ERRORS = {
    "422-object": (422, lambda: detail_body(copy.deepcopy(list(_ERROR_DETAILS)))),
    "422-detail": (422, lambda: {"detail": copy.deepcopy(list(_ERROR_DETAILS))}),
    "401-message": (401, lambda: {"message": "Unauthorized", "request_id": _new_id()}),
    "401-detail": (401, lambda: {"detail": "Unauthorized"}),
    "429-message": (429, lambda: {"message": "Requests rate limit exceeded"}),
    "429-object": (429, lambda: dict(error_body("Rate limit exceeded", "rate_limited", "1300"), raw_status_code=429)),
    "stream-error": (200, None),
}
# the 429 of rate-limit mode, Mistral's recorded shape (cline #9085, raycast/extensions #31107)
RATE_LIMITED_BODY = {
    "object": "error",
    "message": "Rate limit exceeded",
    "type": "rate_limited",
    "param": None,
    "code": "1300",
    "raw_status_code": 429,
}


def request_key(headers) -> str:
    """The API key of a request, for rate-limit mode: the credential of Authorization ("Bearer k" -> "k"),
    else x-api-key, else "" (one bucket for requests without a key)."""
    value = (headers.get("Authorization") or "").strip()
    if value:
        scheme, _, credential = value.partition(" ")
        return credential.strip() or scheme
    return (headers.get("x-api-key") or "").strip()


def retry_after_seconds(value: str):
    """Seconds named by a Retry-After value (delay seconds or an HTTP date), or None when unreadable."""
    value = value.strip()
    if re.fullmatch(r"[0-9]+(?:\.[0-9]+)?", value):
        return float(value)
    try:
        return email.utils.parsedate_to_datetime(value).timestamp() - time.time()
    except (TypeError, ValueError, IndexError, OverflowError):
        return None


# ---------------------------------------------------------------------------
# Request bodies: chunked framing and Content-Encoding


def _inflate(data: bytes) -> bytes:
    try:
        return zlib.decompress(data)
    except zlib.error:
        return zlib.decompress(data, -zlib.MAX_WBITS)  # raw deflate, as some clients send


class _Flushing:
    """A streaming compressor: write() returns the compressed bytes of `data`, flushed so that a reader
    can decode everything written so far; finish() ends the compressed stream."""

    def __init__(self, write, finish):
        self.write, self.finish = write, finish


def _zlib_stream(wbits: int) -> _Flushing:
    c = zlib.compressobj(wbits=wbits)
    return _Flushing(lambda data: c.compress(data) + c.flush(zlib.Z_SYNC_FLUSH), c.flush)


def _brotli_stream() -> _Flushing:
    c = brotli.Compressor()
    return _Flushing(lambda data: c.process(data) + c.flush(), c.finish)


def _zstd_codec():
    """(compress, decompress, streaming compressor) from zstandard (mitmproxy 11) or the PEP 784 zstd
    (mitmproxy 12)."""
    try:
        import zstandard
    except ImportError:
        try:
            from compression import zstd  # Python 3.14+
        except ImportError:
            from backports import zstd

        def stream() -> _Flushing:
            c = zstd.ZstdCompressor()
            return _Flushing(lambda data: c.compress(data, mode=zstd.ZstdCompressor.FLUSH_BLOCK), c.flush)

        return zstd.compress, zstd.decompress, stream

    def stream() -> _Flushing:
        c = zstandard.ZstdCompressor().compressobj()
        return _Flushing(lambda data: c.compress(data) + c.flush(zstandard.COMPRESSOBJ_FLUSH_BLOCK), c.flush)

    return (
        lambda data: zstandard.ZstdCompressor().compress(data),
        lambda data: zstandard.ZstdDecompressor().decompressobj().decompress(data),
        stream,
    )


_zstd_compress, _zstd_decompress, _zstd_stream = _zstd_codec()

ENCODERS = {
    "identity": lambda data: data,
    "gzip": gzip.compress,
    "deflate": zlib.compress,
    "br": brotli.compress,
    "zstd": _zstd_compress,
}
STREAM_ENCODERS = {  # for answers: x-fake-encoding
    "gzip": lambda: _zlib_stream(31),
    "deflate": lambda: _zlib_stream(zlib.MAX_WBITS),
    "br": _brotli_stream,
    "zstd": _zstd_stream,
}
DECODERS = {
    "identity": lambda data: data,
    "gzip": gzip.decompress,
    "x-gzip": gzip.decompress,
    "deflate": _inflate,
    "br": brotli.decompress,
    "zstd": _zstd_decompress,
}


def encode_content(data: bytes, coding: str) -> bytes:
    """Apply one Content-Encoding (handy for tests that send compressed bodies)."""
    return ENCODERS[coding](data)


def decode_content(data: bytes, header_values: list) -> bytes:
    """Undo the Content-Encoding(s), last applied first; ValueError when impossible."""
    codings = [c.strip().lower() for value in header_values for c in value.split(",") if c.strip()]
    for coding in reversed(codings):
        if coding not in DECODERS:
            raise ValueError(f"Unsupported Content-Encoding: {coding}")
        try:
            data = DECODERS[coding](data)
        except Exception as exc:  # each library raises its own error type
            raise ValueError(f"Could not decode request body with Content-Encoding {coding}: {exc}") from None
    return data


def read_chunked(rfile) -> bytes:
    """Read a chunked body (RFC 9112 7.1); ValueError on broken framing."""
    parts = []
    while True:
        line = rfile.readline(65537)
        if not line.endswith(b"\n"):
            raise ValueError("truncated chunk size line")
        size = int(line.split(b";", 1)[0].strip(), 16)
        if size == 0:
            break
        data = rfile.read(size)
        if len(data) != size or rfile.readline(3).strip():
            raise ValueError("truncated or malformed chunk")
        parts.append(data)
    while rfile.readline(65537).strip():  # trailer fields
        pass
    return b"".join(parts)


# ---------------------------------------------------------------------------
# HTTP server


@dataclass(frozen=True)
class Received:
    """One request as the fake saw it."""

    method: str
    path: str  # with the query string
    headers: list  # [(name, value), ...] in the order and case received
    raw_body: bytes  # as on the wire, after de-chunking
    body: bytes  # after Content-Encoding decoding
    status: int  # the status the fake answered

    def header(self, name: str):
        return next((v for k, v in self.headers if k.lower() == name.lower()), None)

    def json(self):
        return json.loads(self.body)


@dataclass(frozen=True)
class Arrival:
    """One request's arrival, for rate-limit tests."""

    at: float  # time.monotonic() when its headers had been read
    path: str
    accepted: bool  # False: refused by rate-limit mode (429)


SPLIT_PAUSE = 0.005  # seconds between the two writes of an event with x-fake-sse: crlf-split


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "FakeMistral/1.0"
    timeout = 60

    def setup(self):
        super().setup()
        if isinstance(self.connection, ssl.SSLSocket):
            self.connection.do_handshake()

    def log_message(self, format, *args):
        pass

    def do_POST(self):
        self._arrived = time.monotonic()
        self._key = request_key(self.headers)
        self._options_error = self._read_options()
        try:
            raw = self._read_body()
        except ValueError as exc:
            self.close_connection = True
            return self._reply(b"", b"", 400, error_body(f"Invalid request body framing: {exc}"))
        try:
            body = decode_content(raw, self.headers.get_all("Content-Encoding") or [])
        except ValueError as exc:
            return self._reply(raw, raw, 400, error_body(str(exc)))
        self._dispatch(raw, body)

    do_GET = do_PUT = do_PATCH = do_DELETE = do_OPTIONS = do_POST

    def _read_body(self) -> bytes:
        coding = self.headers.get("Transfer-Encoding")
        if coding:
            if coding.split(",")[-1].strip().lower() != "chunked":
                raise ValueError(f"unsupported Transfer-Encoding {coding}")
            return read_chunked(self.rfile)
        length = int(self.headers.get("Content-Length") or 0)
        data = self.rfile.read(length)
        if len(data) != length:
            raise ValueError("body shorter than Content-Length")
        return data

    def _read_options(self):
        """The answer's x-fake-encoding and x-fake-sse options; an error message when one is unknown."""
        self._encoding, self._sse_split = None, False
        coding = self.headers.get("x-fake-encoding", "").strip().lower()
        framing = self.headers.get("x-fake-sse", "").strip().lower()
        if coding and coding != "identity" and coding not in STREAM_ENCODERS:
            return f"Unknown x-fake-encoding: {coding}"
        if framing and framing != "crlf-split":
            return f"Unknown x-fake-sse: {framing}"
        self._encoding = coding if coding in STREAM_ENCODERS else None
        self._sse_split = framing == "crlf-split"
        return None

    def _dispatch(self, raw: bytes, body: bytes):
        route = self.path.split("?", 1)[0]
        if self.command != "OPTIONS" and not self.server.fake._admit(self._key, self._arrived, self.path):
            return self._reply(raw, body, 429, copy.deepcopy(RATE_LIMITED_BODY))
        if self._options_error:
            return self._reply(raw, body, 400, error_body(self._options_error))
        name = self.headers.get("x-fake-error", "").strip()
        if name:
            if name not in FAKE_ERRORS:
                return self._reply(raw, body, 400, error_body(f"Unknown x-fake-error: {name}"))
            status, make_body = FAKE_ERRORS[name]
            if make_body is None:
                return self._stream_error(raw, body)
            return self._reply(raw, body, status, make_body())
        forced = self._forced_status()
        if forced:
            return self._reply(raw, body, forced, status_error(forced))
        if self.command == "OPTIONS":
            return self._reply(raw, body, 204, None)
        if route == "/v1/models":
            if self.command == "GET":
                return self._reply(raw, body, 200, models_list())
            return self._reply(raw, body, 405, error_body("Method Not Allowed"))
        if route not in endpoint_paths():
            return self._reply(raw, body, 404, error_body("Not Found"))
        if self.command != "POST":
            return self._reply(raw, body, 405, error_body("Method Not Allowed"))
        outcome = validate(route, body)
        if outcome:
            return self._reply(raw, body, *outcome)
        data = json.loads(body)
        if data.get("stream") and route in COMPLETION_PATHS:
            return self._stream(raw, body, data)
        return self._reply(raw, body, 200, answer(route, data))

    def _forced_status(self):
        value = self.headers.get("x-fake-status", "").strip()
        return int(value) if value.isdigit() and 100 <= int(value) <= 599 else None

    def _record(self, raw: bytes, body: bytes, status: int):
        headers = list(self.headers.items())
        self.server.fake._record(Received(self.command, self.path, headers, raw, body, status))
        retry_after = self.headers.get("x-fake-retry-after")
        if status == 429 and retry_after is not None:
            self.server.fake._hold(self._key, retry_after_seconds(retry_after))

    def _common_headers(self):
        request_id = _new_id()
        for name, value in (
            ("x-request-id", request_id),
            ("mistral-correlation-id", request_id),
            ("x-ratelimit-limit-tokens-minute", "500000"),
            ("x-ratelimit-remaining-tokens-minute", "499000"),
            ("x-ratelimit-limit-tokens-month", "1000000000"),
            ("x-ratelimit-remaining-tokens-month", "999000000"),
            ("ratelimitbysize-limit", "500000"),
            ("ratelimitbysize-remaining", "499000"),
            ("ratelimitbysize-reset", "60"),
            ("access-control-allow-origin", "*"),
        ):
            self.send_header(name, value)
        retry_after = self.headers.get("x-fake-retry-after")
        if retry_after is not None:
            self.send_header("Retry-After", retry_after)
        if self.close_connection:
            self.send_header("Connection", "close")

    def _reply(self, raw: bytes, body: bytes, status: int, payload):
        self._record(raw, body, status)
        data = b"" if payload is None else json.dumps(payload, separators=(",", ":")).encode()
        coding = self._encoding if data else None
        if coding:
            data = ENCODERS[coding](data)
        self.send_response(status)
        self._common_headers()
        if status == 204:
            self.send_header("access-control-allow-methods", "GET, POST, OPTIONS")
            self.send_header("access-control-allow-headers", "authorization, content-type")
        else:
            self.send_header("Content-Type", "application/json")
            if coding:
                self.send_header("Content-Encoding", coding)
            self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _stream(self, raw: bytes, body: bytes, data: dict):
        fake = self.server.fake
        try:
            self._start_stream(raw, body)
            for chunk in chat_chunks(data, fake.stream_events):
                self._event(json.dumps(chunk, separators=(",", ":")).encode())
                if chunk["choices"][0]["finish_reason"] is None:
                    time.sleep(fake.stream_interval)
            self._event(b"[DONE]")
            self._end_stream()
        except OSError:  # the client went away
            self.close_connection = True

    def _stream_error(self, raw: bytes, body: bytes):
        """x-fake-error: stream-error: a role delta, then Mistral's error event, then the end (no [DONE])."""
        try:
            data = json.loads(body)
        except ValueError:
            data = None
        data = data if isinstance(data, dict) else {}
        first = dict(
            _chunk_head(data),
            choices=[{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}],
        )
        try:
            self._start_stream(raw, body)
            self._event(json.dumps(first, separators=(",", ":")).encode())
            time.sleep(self.server.fake.stream_interval)
            self._event(json.dumps(STREAM_ERROR, separators=(",", ":")).encode())
            self._end_stream()
        except OSError:
            self.close_connection = True

    def _start_stream(self, raw: bytes, body: bytes):
        self._record(raw, body, 200)
        self.send_response(200)
        self._common_headers()
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        if self._encoding:
            self.send_header("Content-Encoding", self._encoding)
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        self._compressor = STREAM_ENCODERS[self._encoding]() if self._encoding else None
        self._eol = b"\r\n" if self._sse_split else b"\n"
        if self._sse_split:
            self._send(b": keep-alive" + self._eol * 2)

    def _event(self, payload: bytes):
        """One `data:` event; with x-fake-sse: crlf-split, in two writes cut in the middle of the payload."""
        data = b"data: " + payload + self._eol * 2
        if not self._sse_split:
            return self._send(data)
        middle = len(b"data: ") + len(payload) // 2
        self._send(data[:middle])
        time.sleep(SPLIT_PAUSE)
        self._send(data[middle:])

    def _send(self, data: bytes):
        """One network write (one HTTP chunk), compressed and flushed with x-fake-encoding."""
        if self._compressor is not None:
            data = self._compressor.write(data)
        if data:
            self._write_chunk(data)

    def _end_stream(self):
        if self._compressor is not None:
            tail = self._compressor.finish()
            if tail:
                self._write_chunk(tail)
        self.wfile.write(b"0\r\n\r\n")

    def _write_chunk(self, data: bytes):
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        self.wfile.flush()


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 512  # many concurrent connections in the load tests

    def __init__(self, fake, port: int, ssl_context):
        self.fake = fake
        self.ssl_context = ssl_context
        self._connections = set()
        self._connections_lock = threading.Lock()
        super().__init__((HOST, port), _Handler)

    def server_bind(self):
        socketserver.TCPServer.server_bind(self)  # skips HTTPServer's reverse DNS lookup
        self.server_name, self.server_port = self.server_address[:2]

    def get_request(self):
        sock, address = super().get_request()
        # headers and body go out in separate writes: without this, Nagle + delayed ACK add ~40 ms
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if self.ssl_context is not None:  # the handshake runs in the handler thread
            sock = self.ssl_context.wrap_socket(sock, server_side=True, do_handshake_on_connect=False)
        with self._connections_lock:
            self._connections.add(sock)
        return sock, address

    def shutdown_request(self, request):
        with self._connections_lock:
            self._connections.discard(request)
        super().shutdown_request(request)

    def close_connections(self):
        with self._connections_lock:
            connections = list(self._connections)
        for sock in connections:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def handle_error(self, request, client_address):
        if not isinstance(sys.exc_info()[1], OSError):  # resets and TLS failures are expected
            super().handle_error(request, client_address)


class FakeMistral:
    """A strict fake Mistral API on 127.0.0.1, in a background thread."""

    def __init__(
        self,
        tls: bool = False,
        stream_events: int = 5,
        stream_interval: float = 0.05,
        port: int = 0,
        log: bool = False,
        rate_limit: float | None = None,
    ):
        self.tls = tls
        self.rate_limit = rate_limit  # rate-limit mode: requests per second per key; None = off
        self.stream_events = stream_events
        self.stream_interval = stream_interval
        self.ca_pem = None
        self._requested_port = port
        self._log = log
        self._server = None
        self._thread = None
        self._tmpdir = None
        self._records = []
        self._lock = threading.Lock()
        self._arrivals = {}  # key -> [Arrival]
        self._last_accepted = {}  # key -> monotonic time of its last accepted request
        self._held_until = {}  # key -> monotonic time until which a 429's Retry-After holds it

    def start(self) -> "FakeMistral":
        context = self._tls_context() if self.tls else None
        self._server = _Server(self, self._requested_port, context)
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"fake-mistral-{self.port}",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is None:
            return
        self._server.shutdown()
        self._server.close_connections()
        self._server.server_close()
        self._thread.join(timeout=5)
        self._server = None
        if self._tmpdir:
            shutil.rmtree(self._tmpdir, ignore_errors=True)
            self._tmpdir = None

    def __enter__(self) -> "FakeMistral":
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()

    @property
    def port(self) -> int:
        return self._server.server_address[1] if self._server else self._requested_port

    @property
    def url(self) -> str:
        if self.tls:
            return f"https://localhost:{self.port}"
        return f"http://{HOST}:{self.port}"

    @property
    def received(self) -> list:
        """A snapshot of the requests received so far, oldest first."""
        with self._lock:
            return list(self._records)

    def clear(self) -> None:
        """Forget the requests received, the arrivals and the rate limiter's state (not the mode)."""
        with self._lock:
            self._records.clear()
            self._arrivals.clear()
            self._last_accepted.clear()
            self._held_until.clear()

    def arrivals(self, key: str | None = None) -> list:
        """[Arrival(at, path, accepted)] of one key (the credential: "k1" for "Bearer k1"; "" for
        requests without a key), oldest first; with no key given, of all keys."""
        with self._lock:
            if key is None:
                return sorted((a for items in self._arrivals.values() for a in items), key=lambda a: a.at)
            return list(self._arrivals.get(key, ()))

    def arrival_times(self, key: str | None = None) -> list:
        """time.monotonic() of each ACCEPTED request of the key (of all keys when None), oldest first."""
        return [a.at for a in self.arrivals(key) if a.accepted]

    def gaps(self, key: str | None = None) -> list:
        """Seconds between consecutive accepted requests of the key."""
        times = self.arrival_times(key)
        return [b - a for a, b in zip(times, times[1:])]

    def limited(self, key: str | None = None) -> int:
        """How many requests of the key rate-limit mode refused."""
        return sum(1 for a in self.arrivals(key) if not a.accepted)

    def keys(self) -> list:
        """The keys that sent requests (in clear: this is a test server)."""
        with self._lock:
            return list(self._arrivals)

    def _admit(self, key: str, at: float, path: str) -> bool:
        """Rate-limit mode: may a request of the key that arrived `at` pass? Records its arrival."""
        with self._lock:
            rate = self.rate_limit
            accepted = True
            if rate:
                last = self._last_accepted.get(key)
                if last is not None and at - last < 1.0 / rate:
                    accepted = False
                if at < self._held_until.get(key, float("-inf")):
                    accepted = False
            if accepted:
                self._last_accepted[key] = at
            self._arrivals.setdefault(key, []).append(Arrival(at, path, accepted))
        if self._log and not accepted:
            print(f"rate limited: {path}", file=sys.stderr, flush=True)
        return accepted

    def _hold(self, key: str, seconds) -> None:
        """A 429 with x-fake-retry-after: in rate-limit mode, refuse the key until that time has passed."""
        if seconds is None or not self.rate_limit:
            return
        with self._lock:
            until = time.monotonic() + seconds
            self._held_until[key] = max(until, self._held_until.get(key, float("-inf")))

    def _record(self, record: Received) -> None:
        with self._lock:
            self._records.append(record)
        if self._log:
            print(f"{record.method} {record.path} -> {record.status}", file=sys.stderr, flush=True)

    def _tls_context(self) -> ssl.SSLContext:
        ca = trustme.CA()
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ca.issue_cert("localhost", "127.0.0.1").configure_cert(context)
        context.set_alpn_protocols(["http/1.1"])
        self._tmpdir = tempfile.mkdtemp(prefix="fake-mistral-")
        self.ca_pem = str(Path(self._tmpdir) / "ca.pem")
        ca.cert_pem.write_to_path(self.ca_pem)
        return context


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="Serve a strict fake Mistral API on 127.0.0.1.")
    parser.add_argument("--port", type=int, default=8090)
    parser.add_argument("--tls", action="store_true", help="serve HTTPS with a throwaway trustme CA")
    parser.add_argument("--stream-events", type=int, default=5)
    parser.add_argument("--stream-interval", type=float, default=0.05)
    parser.add_argument(
        "--rate-limit",
        type=float,
        default=None,
        metavar="N",
        help="rate-limit mode: at most N requests per second per API key (429 otherwise)",
    )
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, signal.default_int_handler)  # stop cleanly on SIGTERM too
    fake = FakeMistral(
        tls=args.tls,
        stream_events=args.stream_events,
        stream_interval=args.stream_interval,
        port=args.port,
        log=True,
        rate_limit=args.rate_limit,
    ).start()
    print(fake.url, flush=True)
    if fake.ca_pem:
        print(f"CA certificate: {fake.ca_pem}", flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        fake.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
