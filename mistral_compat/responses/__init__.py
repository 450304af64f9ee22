"""OpenAI's Responses API (POST /v1/responses) bridged onto Mistral's chat completions, which is all Mistral
has. Pure: no I/O, no mitmproxy. Who owns what:

- bridge.py    the entry points: match_path (which Responses path), bridge_request (a Responses request ->
               the chat completions body to forward, through the same chat rewrite as a chat completion sent
               directly), translate_answer (Mistral's whole answer -> the Responses answer);
- request.py   Responses request -> chat body: the allow-list of Responses fields at the top, the top-level
               fields, tools, text.format and reasoning;
- items.py     the input items -> chat messages;
- answer.py    a chat completion -> the Responses `response` object, and the parts of it (items, usage,
               status, the request's echo) the stream is made of;
- stream.py    the chat chunk stream -> the Responses event stream: EventTranslator on events only,
               StreamTranslator the bytes around it (sse.Reader in, SSE out);
- errors.py    BridgeError and error_body (any error in the Responses/OpenAI shape);
- values.py    reading values of any shape (a wrong type counts as absent).
"""

from .answer import chat_to_response, response_object, usage
from .bridge import STORED_MESSAGE, Bridged, bridge_request, match_path, translate_answer
from .errors import BridgeError, error_body
from .items import _join  # noqa: F401 - read by tests/test_hardening_bodies.py
from .request import DROPPABLE, HOSTED_TOOLS, KEPT, UNSUPPORTED, request_to_chat
from .stream import EventTranslator, StreamTranslator

__all__ = [
    "DROPPABLE",
    "HOSTED_TOOLS",
    "KEPT",
    "STORED_MESSAGE",
    "UNSUPPORTED",
    "BridgeError",
    "Bridged",
    "EventTranslator",
    "StreamTranslator",
    "bridge_request",
    "chat_to_response",
    "error_body",
    "match_path",
    "request_to_chat",
    "response_object",
    "translate_answer",
    "usage",
]
