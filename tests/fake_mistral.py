"""A strict fake of Mistral's HTTP API, for end-to-end tests.

Request bodies are checked the way api.mistral.ai checks them:
  * against the request schemas of the published OpenAPI spec
    (tests/fixtures/mistral_request_schemas.json): unknown keys at any depth,
    types, enums and bounds are answered with HTTP 422 in Mistral's shape,
    with pydantic-style `detail` entries;
  * then, for chat and agents completions, against the conversation rules that
    Mistral's serving validator (mistral-common) enforces: HTTP 400.

Run standalone:  python tests/fake_mistral.py --port 8090 [--tls]
"""

from __future__ import annotations

import argparse
import base64
import functools
import gzip
import hashlib
import http.client
import json
import re
import shutil
import socket
import ssl
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

import jsonschema
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
