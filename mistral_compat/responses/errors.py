"""The bridge's errors: BridgeError (a Responses request that cannot be sent to Mistral) and error_body (any
error, Mistral's or the proxy's own, in the Responses/OpenAI shape). The shapes themselves are errors.py's."""

from __future__ import annotations

from .. import errors

PREFIX = errors.PREFIX


class BridgeError(Exception):
    """A Responses request that cannot be sent to Mistral: answer 400 naming .param."""

    def __init__(self, param: str, message: str, code: str | None = None) -> None:
        super().__init__(message)
        self.param = param
        self.message = message
        self.code = code  # "unsupported_parameter" / "unsupported_value" for what Mistral cannot do


def error_body(
    status: int, upstream: bytes | None, message: str | None = None, param: str | None = None, code: str | None = None
) -> bytes:
    """The Responses/OpenAI error shape {"error": {message, type, param, code}} as JSON bytes: from Mistral's
    error body when `upstream` is given (errors.describe), else the proxy's own (`message`, prefixed
    "mistral-compat: "). A given `param` wins over the one found upstream."""
    if upstream is None:
        info = errors.own(status, message or "invalid request", param, code)
    else:
        info = errors.describe(status, upstream, " (in the chat completion request sent to Mistral)")
        if param:
            info = info._replace(param=param)
    return errors.openai_error(info)
