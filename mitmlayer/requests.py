"""The request side: Rewriter (a body rewritten to what the Mistral endpoint accepts) and ResponsesBridge (the
Responses API served from Mistral's chat completions, its answers translated back)."""

from __future__ import annotations

from mitmproxy import http
from mitmproxy.net.http import status_codes

from mistral_compat import errors, responses, settings, state
from mistral_compat.encoding import CODINGS, Decoder, read_body
from mistral_compat.rewrite import rewrite
from mistral_compat.state import FlowState

from . import logger
from .flows import backup, feed_stream, header, reject, revertible, set_body, stream_through


def _body(flow: http.HTTPFlow, st: FlowState, max_body: int) -> bytes | None:
    """The request body for the rewrite (decoded, within max_body), or None when it cannot be used: then the
    flow has been rejected (413, 400), or the body was streamed past the addon (logged)."""
    data = flow.request.data  # (what raw_content and headers read, without a call each)
    raw = data.content
    if raw is None:
        logger.warning(
            f"mistral-compat {st.endpoint}: the request body was streamed (stream_large_bodies?), "
            f"so it could not be {'translated' if st.kind == state.BRIDGE else 'rewritten'}"
        )
        return None
    # (several Content-Encoding fields are joined by ", ", as mitmproxy's get() does)
    coding = data.headers.get("content-encoding", "") if header(data.headers, b"content-encoding") else ""
    if not coding and len(raw) <= max_body:
        return raw  # (read_body's common case, without the call)
    body = read_body(raw, coding, max_body)
    if body.data is None:
        if st.kind == state.BRIDGE:
            reject(flow, st, body.status, body.error, responses.error_body(body.status, None, body.error))
        else:
            reject(flow, st, body.status, body.error, errors.proxy_error(body.status, body.error))
    return body.data


class Rewriter:
    """Rewrites request bodies of matched flows to what each Mistral endpoint accepts (mistral_compat/rewrite.py)."""

    def __init__(self, conf: settings.Settings) -> None:
        self.settings = conf
        self.revertible = False  # whether flows are shown where they can be reverted (flows.revertible)

    def running(self) -> None:
        self.revertible = revertible()

    @staticmethod
    def acts_on(hook: str, kind: str, redirected: bool) -> bool:
        return kind == state.REWRITE

    def request(self, flow: http.HTTPFlow, st: FlowState) -> None:
        if st.kind != state.REWRITE or flow.response or flow.error or not flow.live:
            return
        body = _body(flow, st, self.settings.max_body)
        if body is None:
            return
        conf = self.settings
        assert st.endpoint is not None  # (classify names the endpoint of every REWRITE flow)
        result = rewrite(conf.rules, st.endpoint, body, conf.redirected_map if st.redirected else conf.model_map)
        if result.changes:
            st.changes = result.changes
        if result.error:
            reject(flow, st, 400, result.error, errors.proxy_error(400, result.error))
        elif result.body is not None:
            st.original = body
            if not st.dry_run:
                if self.revertible:
                    flow.backup()
                set_body(flow.request, result.body)


class ResponsesBridge:
    """Serves OpenAI's Responses API (POST .../v1/responses) from Mistral's chat completions: the request
    is translated and sent to .../v1/chat/completions, the answer (JSON or event stream) translated back."""

    def __init__(self, conf: settings.Settings) -> None:
        self.settings = conf

    @staticmethod
    def acts_on(hook: str, kind: str, redirected: bool) -> bool:
        return kind in (state.BRIDGE, state.STORED)

    def request(self, flow: http.HTTPFlow, st: FlowState) -> None:
        if st.kind not in (state.BRIDGE, state.STORED) or flow.response or flow.error or not flow.live:
            return
        if st.kind == state.STORED:
            self._reject(flow, st, 404, responses.STORED_MESSAGE)
            return
        if flow.request.raw_content is None:
            self._reject(
                flow,
                st,
                400,
                "the request body was streamed past the addon (stream_large_bodies is set "
                "below its size), so it cannot be translated",
            )
            return
        body = _body(flow, st, self.settings.max_body)
        if body is None:
            return
        conf = self.settings
        bridged = responses.bridge_request(conf.rules, body, conf.redirected_map if st.redirected else conf.model_map)
        st.changes = bridged.changes
        if bridged.body is None:
            self._reject(flow, st, 400, bridged.error or "invalid request", bridged.param, bridged.code)
            return
        st.original = body
        if st.dry_run:
            return
        backup(flow)
        st.bridge = bridged.request
        req = flow.request
        match = responses.match_path(req.path)
        assert match is not None  # (classify matched it: a "create" path)
        req.path = match[1]
        req.headers["accept-encoding"] = "identity"  # the answer is translated: keep it uncompressed
        set_body(req, bridged.body)

    @staticmethod
    def _reject(
        flow: http.HTTPFlow, st: FlowState, status: int, message: str, param: str | None = None, code: str | None = None
    ) -> None:
        reject(flow, st, status, message, responses.error_body(status, None, message, param, code))

    def responseheaders(self, flow: http.HTTPFlow, st: FlowState) -> None:
        resp = flow.response
        if st.bridge is None or flow.error or not flow.live or resp is None:
            return
        coding = header(resp.headers, b"content-encoding").strip().lower()
        if not (
            200 <= resp.status_code < 300
            and header(resp.headers, b"content-type").startswith("text/event-stream")
            and (coding in ("", "identity") or coding in CODINGS)
        ):
            resp.stream = False  # translated whole in `response` (even where stream_large_bodies would stream it)
            return
        translator = responses.StreamTranslator(st.bridge)
        decoder = Decoder(coding) if coding in CODINGS else None  # (asked for identity, but compressed all the same)

        def translate(data: bytes) -> list[bytes]:
            # b"" is the end of the stream (mitmproxy calls once more with it). An HTTP/2 upstream could in
            # principle also send an empty DATA frame mid-stream, which would end the translation early.
            try:
                out = feed_stream(translator, decoder, data)
            except Exception as e:  # a safety net: the client gets a failed response, never a broken stream
                logger.warning(
                    f"mistral-compat responses: the event stream could not be translated "
                    f"({type(e).__name__}); ended with response.failed"
                )
                out = translator.abort()
            return [out] if out else []  # never b"" mid-stream: mitmproxy 11 would end the stream there

        stream_through(resp, translate, decoded=decoder is not None)

    def response(self, flow: http.HTTPFlow, st: FlowState) -> None:
        resp = flow.response
        if st.bridge is None or not flow.live or resp is None or resp.stream:
            return
        try:
            status, content_type, body = responses.translate_answer(
                resp.status_code,
                header(resp.headers, b"content-type"),
                resp.get_content(strict=False) or b"",
                st.bridge,
            )
        except Exception as e:  # a safety net, as for the stream
            logger.warning(f"mistral-compat responses: the answer could not be translated ({type(e).__name__})")
            status, content_type = 502, "application/json"
            body = responses.error_body(502, None, "Mistral's answer to the chat completion could not be translated")
        if status != resp.status_code:
            resp.status_code, resp.reason = status, status_codes.RESPONSES.get(status, "")
        resp.headers["content-type"] = content_type
        resp.content = body
