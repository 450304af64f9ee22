"""Reading and writing flows: the FlowState's metadata key, header reads, request bodies, answers streamed
through a translation, local answers, and where flows are kept (mitmweb, the console, -w)."""

from __future__ import annotations

from typing import overload

from mitmproxy import ctx, http

from mistral_compat.state import FlowState

META = "mistral_compat"  # flow.metadata key of the FlowState
MARKER = ":wrench:"  # flow.marked on changed flows: stands out in mitmweb's and the console's flow list


@overload
def header(headers: http.Headers, name: bytes) -> str: ...
@overload
def header(headers: http.Headers, name: bytes, default: str) -> str: ...
@overload
def header(headers: http.Headers, name: bytes, default: None) -> str | None: ...
def header(headers: http.Headers, name: bytes, default: str | None = "") -> str | None:
    """The first value of a header (name in lower case): one plain pass over the raw fields, several
    times cheaper than a Headers lookup, which converts every name it passes (here only a name of the
    right length is compared, lower-cased only when it is not already). Only on the hot path."""
    size = len(name)
    for key, value in headers.fields:
        if len(key) == size and (key == name or key.lower() == name):
            return value.decode("utf-8", "surrogateescape")
    return default


def user_agent_and_origin(headers: http.Headers) -> tuple[str, str | None]:
    """header(headers, b"user-agent") and header(headers, b"origin", None), in one pass (every matched request
    asks for both)."""
    ua = origin = None
    for key, value in headers.fields:
        size = len(key)
        if size == 10:
            if ua is None and (key == b"user-agent" or key.lower() == b"user-agent"):
                ua = value.decode("utf-8", "surrogateescape")
                if origin is not None:
                    break
        elif size == 6 and origin is None and (key == b"origin" or key.lower() == b"origin"):
            origin = value.decode("utf-8", "surrogateescape")
            if ua is not None:
                break
    return ua or "", origin


_LENGTH = b"content-length"
_CODINGS = (b"content-encoding", b"transfer-encoding")


def set_body(req: http.Request, body: bytes) -> None:
    """req.content = body, with the common case (no Content-Encoding or Transfer-Encoding, one Content-Length)
    done in one pass over the header fields."""
    data = req.data  # (what raw_content and headers read and write, without a call each)
    fields = data.headers.fields
    at = -1  # the Content-Length field's index; -2: mitmproxy's own way is needed
    for i, (key, _) in enumerate(fields):
        size = len(key)
        if size == 14:
            if key == _LENGTH or key.lower() == _LENGTH:
                at = i if at == -1 else -2
        elif (size == 16 or size == 17) and key.lower() in _CODINGS:
            at = -2
            break
    if at < 0:
        req.content = body  # mitmproxy's own way: re-encodes, sets the length as needed
        return
    data.content = body
    data.headers.fields = (*fields[:at], (fields[at][0], str(len(body)).encode()), *fields[at + 1 :])


def stream_through(resp: http.Response, translate, decoded: bool) -> None:
    """Stream an answer through translate (bytes -> pieces), with the framing that needs: no length (the size
    changes), chunked on HTTP/1.1, and no Content-Encoding when translate decodes it."""
    resp.stream = translate
    resp.headers.pop("content-length", None)
    if decoded:
        resp.headers.pop("content-encoding", None)
    if resp.http_version == "HTTP/1.1" and "transfer-encoding" not in resp.headers:
        resp.headers["transfer-encoding"] = "chunked"


def feed_stream(translator, decoder, data: bytes) -> bytes:
    """One piece of an answer stream through its decoder (if compressed) and its translator (anything with
    feed and close); b"" is the end of the stream (mitmproxy calls once more with it)."""
    text = data if decoder is None else (decoder.feed(data) if data else decoder.close())
    out = translator.feed(text)
    return out + translator.close() if not data else out


def reject(flow: http.HTTPFlow, st: FlowState, status: int, message: str, body: bytes) -> None:
    """Answer a matched request from the proxy itself (unless in a dry run), and note why for Report."""
    st.rejected = (status, message)
    if not st.dry_run:
        flow.response = http.Response.make(status, body, {"content-type": "application/json"})


def revertible() -> bool:
    """Whether flows are shown where they can be reverted: mitmweb's or the console's flow list (an addon named
    "view"; mitmdump has none, and cannot revert)."""
    return ctx.master.addons.get("view") is not None


def backup(flow: http.HTTPFlow) -> None:
    """Keep the flow as the client sent it for mitmweb's and the console's "revert", when one of them
    shows the flows (a backup copies the whole flow: too dear for mitmdump, which cannot revert)."""
    if revertible():
        flow.backup()


def keeps_flows() -> bool:
    """Whether flows are kept where people read their comments: mitmweb's or the console's flow list (an addon
    named "view"), or a file (-w). mitmdump alone prints no comment, so none is written there."""
    return revertible() or bool(getattr(ctx.options, "save_stream_file", None))
