"""Answers: Mistral's answers to matched requests in the shapes OpenAI clients read."""

from __future__ import annotations

from mitmproxy import http

from mistral_compat import answers, report, settings, state
from mistral_compat.encoding import Decoder
from mistral_compat.state import FlowState

from . import logger
from .flows import feed_stream, header, stream_through


class Answers:
    """Mistral's answers to matched requests, in the shapes OpenAI clients read (mistral_compat/answers.py):
    chat-shaped answers, JSON or event streams translated as they arrive, and error bodies given OpenAI's
    error object. Event streams are passed on as they arrive, never buffered."""

    def __init__(self, conf: settings.Settings) -> None:
        self.settings = conf

    @staticmethod
    def acts_on(hook: str, kind: str, redirected: bool) -> bool:
        return kind not in answers.LEFT_ALONE

    # (what is done to a flow's answers, FlowState.answers, is decided with the rest of the FlowState by the
    # Matcher: mistral_compat.answers.answers_for)

    def responseheaders(self, flow: http.HTTPFlow, st: FlowState) -> None:
        resp = flow.response
        kind = st.answers
        if kind is None or flow.error or not flow.live or resp is None:
            return
        data = resp.data  # (what Response.status_code and .headers read, without a call each)
        ok = 200 <= data.status_code < 300
        if not header(data.headers, b"content-type").startswith("text/event-stream"):
            if kind == state.CHAT_ANSWERS or not ok:
                resp.stream = False  # translated whole in `response` (even where stream_large_bodies would stream it)
            return
        if kind != state.CHAT_ANSWERS or not ok:
            resp.stream = True
            return
        coding = header(resp.headers, b"content-encoding").strip().lower()
        decoder = None
        if coding and coding != "identity":
            try:
                decoder = Decoder(coding)
            except ValueError:
                logger.info(f"mistral-compat: an event stream in Content-Encoding {coding!r} is passed on untranslated")
                resp.stream = True
                return
        translator = st.answer_stream = answers.StreamTranslator()
        if st.dry_run:  # the bytes pass as they came: so do the headers
            resp.stream = self._streamer(translator, decoder, True)
        else:
            stream_through(resp, self._streamer(translator, decoder, False), decoded=decoder is not None)

    @staticmethod
    def _streamer(translator: answers.StreamTranslator, decoder: Decoder | None, dry_run: bool):
        broken = False  # the compressed data did not decode: nothing more can be made of it

        def translate(data: bytes) -> list[bytes]:
            # b"" is the end of the stream (mitmproxy calls once more with it); never return b"" mid-stream:
            # mitmproxy 11 would end the stream there. An event that cannot be translated passes as it came
            # (StreamTranslator.event); what is left here is the decoding, and the unforeseen.
            nonlocal broken
            out = b""
            if not broken:
                try:
                    out = feed_stream(translator, decoder, data)
                except Exception as e:  # a safety net: never an exception in mitmproxy's stream
                    broken = True
                    logger.warning(
                        f"mistral-compat: an event stream could not be {'decoded' if decoder else 'read'} "
                        f"({type(e).__name__}: {report.printable(str(e))}); "
                        + ("it was passed on as it came" if dry_run or decoder is None else "it ends here")
                    )
                    # no decoder: what the reader held and this piece, as they came; a decoder: what it held
                    # is an unfinished event that can no longer be finished, so it ends here
                    held = translator.reader.drain()
                    out = held + data if decoder is None else b""
            elif decoder is None:
                out = data
            if dry_run:  # the translation only gathered what it would change
                out = data
            return [out] if out else []

        return translate

    def response(self, flow: http.HTTPFlow, st: FlowState) -> None:
        resp = flow.response
        kind = st.answers
        if kind is None or not flow.live or resp is None or st.rejected:
            return
        if resp.stream:
            translator, st.answer_stream = st.answer_stream, None
            if translator is not None and translator.notes:
                st.answer_notes = translator.notes.list()
            return
        data = resp.data  # (what Response.status_code, .headers and .raw_content read, without a call each)
        if kind == state.ERROR_ANSWERS and data.status_code < 400:
            return
        try:
            content = (
                resp.get_content(strict=False) if header(data.headers, b"content-encoding") else data.content
            ) or b""
            new, notes = answers.translate_json(data.status_code, content)
        except Exception as e:  # a safety net: the answer is passed on as it came
            logger.warning(f"mistral-compat: an answer could not be translated ({type(e).__name__}: {e})")
            return
        if notes:
            st.answer_notes = notes
        if new is not None and not st.dry_run:
            st.answer_original = content
            resp.content = new
