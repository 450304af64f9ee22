"""mistral-compat: make OpenAI-compatible requests acceptable to Mistral's API.

    mitmdump -s addon.py                                   # as an HTTP(S) proxy
    mitmdump -s addon.py --mode reverse:https://api.mistral.ai --set connection_strategy=lazy

This file is the thin mitmproxy layer: options, hooks, and applying what the pure core
(the mistral_compat package beside it) decides.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Sequence

from mitmproxy import contentviews, ctx, exceptions, http
from mitmproxy.net.http import status_codes
from mitmproxy.proxy import mode_specs

from mistral_compat import answers, errors, report, responses
from mistral_compat.encoding import CODINGS, Decoder, TooLarge, decode_body
from mistral_compat.jsonio import DEFAULT_MAX_BODY, format_size, parse_size
from mistral_compat.changes import Change
from mistral_compat.cors import CorsPolicy
from mistral_compat.hosts import HostSet, allow_patterns
from mistral_compat.redact import redact_text
from mistral_compat.rewrite import rewrite
from mistral_compat.rules import Rules, builtin
from mistral_compat.rules import from_spec_file as rules_from_spec_file
from mistral_compat.spec import SpecError

logger = logging.getLogger(__name__)

META = "mistral_compat"  # flow.metadata key: what the addon saw and did (read by Report, the content view)
MARKER = ":wrench:"      # flow.marked on changed flows: stands out in mitmweb's and the console's flow list


def reject(flow: http.HTTPFlow, status: int, message: str, body: bytes) -> None:
    """Answer a matched request from the proxy itself (unless in a dry run), and note why for Report."""
    info = flow.metadata[META]
    info["rejected"] = message
    info["reject_status"] = status
    if not info.get("dry_run"):
        flow.response = http.Response.make(status, body, {"content-type": "application/json"})


def backup(flow: http.HTTPFlow) -> None:
    """Keep the flow as the client sent it for mitmweb's and the console's "revert", when one of them
    shows the flows (a backup copies the whole flow: too dear for mitmdump, which cannot revert)."""
    if ctx.master.addons.get("view") is not None:
        flow.backup()


def header(headers: http.Headers, name: bytes, default: str = "") -> str:
    """The first value of a header (name in lower case): one plain pass over the raw fields, several
    times cheaper than a Headers lookup, which converts every name it passes. Only on the hot path."""
    for key, value in headers.fields:
        if key.lower() == name:
            return value.decode("utf-8", "surrogateescape")
    return default


# Content-Encodings of request bodies: decoded here (in pieces, no further than the size limit) and
# re-encoded by mitmproxy when the body is rewritten. mitmproxy's own get_content() would decode whole,
# with no limit, and also any Python codec named there (bz2, zlib, base64, ...), none an HTTP coding.
_PLAIN = frozenset({"", "identity", "none"})


def get_body(req: http.Request, endpoint: str, max_body: int = DEFAULT_MAX_BODY) -> bytes | tuple[int, str] | None:
    """The request body, decoded; None when it was streamed past the addon (logged); (status, why) when it
    cannot be used: 413 when it is, or decodes to, more than max_body bytes (a compressed body is decoded
    piece by piece and no further than that: a bomb costs max_body at most), 400 when its Content-Encoding
    does not decode."""
    raw = req.raw_content
    if raw is None:
        logger.warning(f"mistral-compat {endpoint}: the request body was streamed (stream_large_bodies?), "
                       f"so it could not be rewritten")
        return None
    if not header(req.headers, b"content-encoding"):
        coding = ""
    else:
        coding = req.headers.get("content-encoding", "").strip().lower()  # (several fields: joined by ", ")
    if len(raw) > max_body:  # compressed too: the decoder's own work grows with what it is given
        return 413, (f"the request body ({format_size(len(raw))}) is larger than the proxy's limit of "
                     f"{format_size(max_body)} (the mistral_max_body option)")
    if coding in _PLAIN:
        return raw
    cannot = (f"the body cannot be decoded as Content-Encoding {req.headers.get('content-encoding', '')!r} "
              f"(the proxy decodes gzip, deflate, br and zstd)")
    if coding not in CODINGS:
        return 400, cannot
    try:
        return decode_body(raw, coding, max_body)
    except TooLarge:
        return 413, (f"the request body decodes (Content-Encoding {coding}) to more than the proxy's limit of "
                     f"{format_size(max_body)} (the mistral_max_body option); it was not decoded further")
    except ValueError:
        return 400, cannot


def set_body(req: http.Request, body: bytes) -> None:
    """req.content = body, with the common case (no Content-Encoding, a Content-Length) in one pass."""
    fields = req.headers.fields
    if any(k.lower() in (b"content-encoding", b"transfer-encoding") for k, _ in fields) \
            or not any(k.lower() == b"content-length" for k, _ in fields):
        req.content = body  # mitmproxy's own way: re-encodes, sets the length as needed
        return
    req.raw_content = body
    length = str(len(body)).encode()
    req.headers.fields = tuple((k, length) if k.lower() == b"content-length" else (k, v) for k, v in fields)


def stream_through(resp: http.Response, translate, decoded: bool) -> None:
    """Stream an answer through translate (bytes -> pieces), with the framing that needs: no length (the size
    changes), chunked on HTTP/1.1, and no Content-Encoding when translate decodes it."""
    resp.stream = translate
    resp.headers.pop("content-length", None)
    if decoded:
        resp.headers.pop("content-encoding", None)
    if resp.http_version == "HTTP/1.1" and "transfer-encoding" not in resp.headers:
        resp.headers["transfer-encoding"] = "chunked"


def option_error(part: object, message: str) -> None:
    """A bad value for one of the addon's options. mitmproxy prints whatever a script's configure raises
    while it loads the script (start-up) with a traceback; so at a part's first configure the message is
    logged as an error instead, and mitmdump/mitmweb stop with "Error logged during startup" (exit code 1).
    Later (an option changed at run time) OptionsError is raised: mitmproxy refuses the change and keeps the
    value before it. Each part's configure ends with configured(self)."""
    if getattr(part, "_mistral_configured", False):
        raise exceptions.OptionsError(message)
    logger.error(f"OptionsError: {message}")


def configured(part: object) -> None:
    part._mistral_configured = True  # type: ignore[attr-defined]


def client_name(req: http.Request) -> str:
    """The User-Agent as printed in log lines and the summary: escaped and cut (report.printable)."""
    ua = header(req.headers, b"user-agent")
    return report.printable(ua, 80) if ua else "(no user-agent)"


class Matcher:
    """Decides which flows are bound for Mistral and marks them (flow.metadata[META]) for the others."""

    def __init__(self) -> None:
        self.hosts = HostSet()

    def load(self, loader) -> None:
        loader.add_option(
            name="mistral_hosts", typespec=Sequence[str], default=[],
            help="Extra hosts to treat as Mistral, besides api.mistral.ai and codestral.mistral.ai "
                 "(repeat the option for several; '*.example.com' matches every subdomain). "
                 "In reverse mode every request is treated as bound for Mistral.",
        )

    def configure(self, updated) -> None:
        if "mistral_hosts" in updated:
            try:
                self.hosts = HostSet.parse(ctx.options.mistral_hosts)
            except ValueError as e:
                option_error(self, f"mistral_hosts: {e}")
        configured(self)

    def running(self) -> None:
        for name in sorted(k for k in getattr(ctx.options, "deferred", {}) if k.startswith("mistral_")):
            logger.warning(f"Unknown option {name!r} ignored: mistral-compat has no such option "
                           f"(its options are listed in the README).")

    def requestheaders(self, flow: http.HTTPFlow) -> None:
        if flow.response or flow.error or not flow.live:
            return
        if flow.request.host in self.hosts or isinstance(flow.client_conn.proxy_mode, mode_specs.ReverseMode):
            flow.metadata[META] = {"client": client_name(flow.request)}


class InterceptScope:
    """As a forward proxy, TLS-intercept only the matched hosts; tunnel every other host untouched.

    Built on mitmproxy's own allow_hosts, derived from the matched hosts. A user's own allow_hosts or
    ignore_hosts wins; mistral_intercept_all turns the scoping off.
    """

    def __init__(self) -> None:
        self.owned: list[str] | None = None  # the allow_hosts value this addon set, while it is in force

    def load(self, loader) -> None:
        loader.add_option(
            name="mistral_intercept_all", typespec=bool, default=False,
            help="In forward-proxy mode, TLS-intercept every host (to look at all traffic in mitmweb), "
                 "not only the Mistral hosts. Other hosts' requests are still never rewritten.",
        )

    def running(self) -> None:
        self.apply()

    def configure(self, updated) -> None:
        if self.owned is not None and "allow_hosts" in updated and ctx.options.allow_hosts != self.owned:
            self.owned = None  # the user set their own
        if self.owned is not None and updated & {"mistral_hosts", "mistral_intercept_all"}:
            self.apply()

    def apply(self) -> None:
        opts = ctx.options
        modes = list(getattr(opts, "mode", ["regular"]))
        if not all(m == "regular" or m.startswith("regular@") for m in modes):
            return  # reverse (and other) modes: the listener's target is Mistral; nothing to scope
        if self.owned is None and (opts.allow_hosts or opts.ignore_hosts):
            logger.info("mistral-compat: your allow_hosts/ignore_hosts decide which hosts are intercepted")
            return
        if opts.mistral_intercept_all:
            if self.owned is not None:
                self.owned = None
                opts.update(allow_hosts=[])
            logger.info("mistral-compat: intercepting TLS for every host (mistral_intercept_all); "
                        "only Mistral hosts are rewritten")
            return
        try:
            hosts = HostSet.parse(opts.mistral_hosts)
        except ValueError:
            return  # reported by the Matcher (at start-up, mitmproxy stops before this is reached)
        self.owned = allow_patterns(hosts)
        opts.update(allow_hosts=self.owned)
        logger.info(f"mistral-compat: intercepting TLS only for {', '.join(hosts.patterns)}; "
                    f"every other host is tunnelled untouched (mistral_intercept_all=true intercepts all)")


class Cors:
    """Answers preflights itself and puts CORS headers on every answer to a matched request."""

    def __init__(self) -> None:
        self.policy = CorsPolicy()

    def load(self, loader) -> None:
        loader.add_option(
            name="mistral_cors_origins", typespec=Sequence[str], default=[],
            help="Browser origins allowed to call the API through the proxy, e.g. https://chat.example.com "
                 "(repeat the option for several). Empty: any origin ('*').",
        )

    def configure(self, updated) -> None:
        if "mistral_cors_origins" in updated:
            try:
                self.policy = CorsPolicy(ctx.options.mistral_cors_origins)
            except ValueError as e:
                option_error(self, f"mistral_cors_origins: {e}")
        configured(self)

    def requestheaders(self, flow: http.HTTPFlow) -> None:
        if flow.response or flow.error or not flow.live or META not in flow.metadata:
            return
        if flow.request.method == "OPTIONS":
            flow.metadata[META]["preflight"] = True
            flow.response = http.Response.make(204, b"", {"server": "mistral-compat"})

    def responseheaders(self, flow: http.HTTPFlow) -> None:
        info = flow.metadata.get(META)
        if info is None or flow.error or not flow.live or not flow.response:
            return
        req, headers = flow.request, flow.response.headers
        preflight = None
        if info.get("preflight"):
            preflight = (header(req.headers, b"access-control-request-method"),
                         header(req.headers, b"access-control-request-headers"))
        # One pass over the raw header fields (each Headers lookup or deletion is a pass of its own):
        # the upstream's own CORS headers are replaced, never duplicated; a 204 has no length.
        kept, vary = [], []
        for field in headers.fields:
            name = field[0].lower()
            if name.startswith(b"access-control-") or (preflight is not None and name == b"content-length"):
                continue
            if name == b"vary":
                vary.append(field[1].decode("latin-1"))
            kept.append(field)
        names = [field[0].decode("latin-1") for field in kept]
        added = self.policy.headers(header(req.headers, b"origin", None), names, preflight)
        missing = self.policy.vary(preflight is not None)
        if missing:
            present = {v.strip().lower() for value in vary for v in value.split(",")}
            missing = [v for v in missing if v.lower() not in present]
        headers.fields = (*kept, *((k.encode("latin-1"), v.encode("utf-8", "surrogateescape"))
                                   for k, v in added.items()))
        if missing:
            headers["vary"] = ", ".join(vary + missing)


class Rewriter:
    """Rewrites request bodies of matched flows to what each Mistral endpoint accepts."""

    WATCH_INTERVAL = 1.0  # seconds between checks of mistral_openapi for changes
    max_body = DEFAULT_MAX_BODY  # mistral_max_body in bytes (set in configure)

    def __init__(self) -> None:
        self.rules = builtin()
        self.dry_run = False
        self.spec_path = ""
        self.spec_stamp: tuple | None = None
        self.watcher: asyncio.Task | None = None

    def load(self, loader) -> None:
        loader.add_option(
            name="mistral_dry_run", typespec=bool, default=False,
            help="Log what would be changed, but forward every body unchanged.",
        )
        loader.add_option(
            name="mistral_openapi", typespec=str, default="",
            help="Path of a Mistral OpenAPI spec (YAML or JSON) to take the rules from instead of the "
                 "built-in ones; reloaded when the file changes. Endpoints it lacks keep the built-in rules.",
        )
        loader.add_option(
            name="mistral_max_body", typespec=str, default="64m",
            help="The largest request body bound for Mistral that the proxy takes, once decoded (a compressed "
                 "body is decoded no further than this, so a few KB that decode to gigabytes cost no more); "
                 "larger ones are answered 413 without being parsed or forwarded. A size such as 64m, 512k, 1g "
                 "or a number of bytes. Mistral documents no limit; its largest bodies carry base64 documents "
                 "(a 50 MB OCR document is about 67 MB), which the default holds. mitmproxy's body_size_limit "
                 "still limits the raw bytes of every body.",
        )

    def configure(self, updated) -> None:
        if "mistral_max_body" in updated:
            try:
                self.max_body = parse_size(ctx.options.mistral_max_body)
            except ValueError as e:
                option_error(self, f"mistral_max_body: {e}")
        configured(self)
        if "mistral_dry_run" in updated:
            self.dry_run = ctx.options.mistral_dry_run
        if "mistral_openapi" in updated:
            self.spec_path = ctx.options.mistral_openapi
            if not self.spec_path:
                self.spec_stamp = None
                self.rules = builtin()
            elif self.watcher is None:  # start-up: load it now, so that the first request has these rules
                self.spec_stamp = _stamp(self.spec_path)
                self.rules = load_rules(self.spec_path)
            else:  # changed while running: the watcher loads it within a second, off the event loop
                self.spec_stamp = ("changed",)

    def running(self) -> None:
        if self.watcher is None:
            self.watcher = asyncio.get_running_loop().create_task(self.watch())

    def done(self) -> None:
        if self.watcher is not None:
            self.watcher.cancel()
            self.watcher = None
        from mistral_compat.rules import stop_parsing
        stop_parsing()  # a spec file still being parsed would hold up the exit

    async def watch(self) -> None:
        """Reload the rules when the mistral_openapi file changes. It is parsed in a separate process that a
        thread waits for, so requests keep flowing; no failure ends the watch (the next good file loads)."""
        while True:
            await asyncio.sleep(self.WATCH_INTERVAL)
            path = self.spec_path
            if not path:
                continue
            try:
                stamp = _stamp(path)
                if stamp != self.spec_stamp:
                    self.spec_stamp = stamp
                    rules = await asyncio.to_thread(load_rules, path, self.rules)
                    if path == self.spec_path:
                        self.rules = rules
            except Exception as e:  # load_rules reports its failures itself; this is the last resort
                logger.warning(f"mistral-compat: mistral_openapi: reloading {path} failed "
                               f"({type(e).__name__}: {e}); the rules in force stay")

    def request(self, flow: http.HTTPFlow) -> None:
        if flow.response or flow.error or not flow.live:
            return
        info = flow.metadata.get(META)
        if info is None:
            return
        req = flow.request
        if req.method != "POST":
            return
        if "endpoint" in info:
            return  # already handled (the Responses bridge)
        endpoint = self.rules.endpoint(req.path)
        if endpoint is None:
            return
        info["endpoint"] = endpoint
        info["dry_run"] = self.dry_run
        body = get_body(req, endpoint, self.max_body)
        if isinstance(body, tuple):  # (status, why): too large, or an encoding that does not decode
            status, message = body
            reject(flow, status, message, errors.proxy_error(status, message))
            return
        if body is None:
            return
        result = rewrite(self.rules, endpoint, body)
        if result.changes:
            info["changes"] = result.changes
        if result.error:
            reject(flow, 400, result.error, errors.proxy_error(400, result.error))
        elif result.body is not None:
            info["original"] = body
            if not self.dry_run:
                backup(flow)
                set_body(req, result.body)


def _stamp(path: str) -> tuple | None:
    """What tells a changed file: a file replaced by another (a new inode) with the same size and time too."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_mtime_ns, st.st_size, st.st_ino, st.st_ctime_ns


def load_rules(path: str, keep: Rules | None = None) -> Rules:
    """The rules from a spec file, parsed in a separate process with limits (rules.from_spec_file); when it
    is of no use, the reason is logged and keep (the rules in force; the built-in ones at start-up) stays."""
    if not path:
        return builtin()
    keep = keep or builtin()
    stay = "the built-in rules stay in force" if keep is builtin() else \
        f"the rules loaded before from {keep.source} stay in force"
    try:
        rules, problems = rules_from_spec_file(path, isolate=True)
    except SpecError as e:
        logger.warning(f"mistral-compat: mistral_openapi: {e}; {stay}")
        return keep
    except Exception as e:  # pragma: no cover - every failure should be a SpecError
        logger.warning(f"mistral-compat: mistral_openapi: {path} could not be loaded ({type(e).__name__}: {e}); "
                       f"{stay}")
        return keep
    for problem in problems:
        logger.warning(f"mistral-compat: mistral_openapi {path}: {problem}")
    fallback = f"; built-in rules for {', '.join(rules.from_fallback)}" if rules.from_fallback else ""
    logger.info(f"mistral-compat: rules for {len(rules.endpoints) - len(rules.from_fallback)} endpoints "
                f"loaded from {path}{fallback}")
    return rules


class ResponsesBridge:
    """Serves OpenAI's Responses API (POST .../v1/responses) from Mistral's chat completions: the request
    is translated and sent to .../v1/chat/completions, the answer (JSON or event stream) translated back."""

    def __init__(self, rewriter: Rewriter) -> None:
        self.rewriter = rewriter  # its rules and dry-run setting

    def request(self, flow: http.HTTPFlow) -> None:
        if flow.response or flow.error or not flow.live:
            return
        info = flow.metadata.get(META)
        if info is None or "endpoint" in info:
            return
        req = flow.request
        match = responses.match_path(req.path)
        if match is None:
            return
        kind, chat_path = match
        if req.method == "OPTIONS" or (kind == "create" and req.method != "POST"):
            return
        info["endpoint"] = "responses"
        info["dry_run"] = dry = self.rewriter.dry_run
        if kind == "stored":
            self._reject(flow, 404, responses.STORED_MESSAGE)
            return
        body = get_body(req, "responses", self.rewriter.max_body)
        if body is None:
            body = (400, "the request body was streamed past the addon (stream_large_bodies is set below its "
                         "size), so it cannot be translated")
        if isinstance(body, tuple):  # (status, why)
            self._reject(flow, *body)
            return
        bridged = responses.bridge_request(self.rewriter.rules, body)
        if bridged.changes:
            info["changes"] = bridged.changes
        if bridged.body is None:
            self._reject(flow, 400, bridged.error or "invalid request", bridged.param, bridged.code)
            return
        info["original"] = body
        if dry:
            return
        backup(flow)
        info["bridge"] = bridged.request
        req.path = chat_path
        req.headers["accept-encoding"] = "identity"  # the answer is translated: keep it uncompressed
        set_body(req, bridged.body)

    @staticmethod
    def _reject(flow: http.HTTPFlow, status: int, message: str, param: str | None = None,
                code: str | None = None) -> None:
        reject(flow, status, message, responses.error_body(status, None, message, param, code))

    def responseheaders(self, flow: http.HTTPFlow) -> None:
        info = flow.metadata.get(META)
        if info is None or "bridge" not in info or flow.error or not flow.live or not flow.response:
            return
        resp = flow.response
        coding = header(resp.headers, b"content-encoding").strip().lower()
        if not (200 <= resp.status_code < 300 and header(resp.headers, b"content-type").startswith("text/event-stream")
                and (coding in ("", "identity") or coding in CODINGS)):
            resp.stream = False  # translated whole in `response` (even where stream_large_bodies would stream it)
            return
        translator = responses.StreamTranslator(info["bridge"])
        decoder = Decoder(coding) if coding in CODINGS else None  # (asked for identity, but compressed all the same)

        def translate(data: bytes) -> list[bytes]:
            # b"" is the end of the stream (mitmproxy calls once more with it). An HTTP/2 upstream could in
            # principle also send an empty DATA frame mid-stream, which would end the translation early.
            try:
                text = data
                if decoder is not None:
                    text = decoder.feed(data) if data else decoder.close()
                out = translator.feed(text)
                if not data:
                    out += translator.close()
            except Exception as e:  # a safety net: the client gets a failed response, never a broken stream
                logger.warning(f"mistral-compat responses: the event stream could not be translated "
                               f"({type(e).__name__}); ended with response.failed")
                out = translator.abort()
            return [out] if out else []  # never b"" mid-stream: mitmproxy 11 would end the stream there

        stream_through(resp, translate, decoded=decoder is not None)

    def response(self, flow: http.HTTPFlow) -> None:
        info = flow.metadata.get(META)
        if info is None or "bridge" not in info or not flow.live or not flow.response or flow.response.stream:
            return
        resp = flow.response
        try:
            status, content_type, body = responses.translate_answer(
                resp.status_code, header(resp.headers, b"content-type"), resp.get_content(strict=False) or b"",
                info["bridge"])
        except Exception as e:  # a safety net, as for the stream
            logger.warning(f"mistral-compat responses: the answer could not be translated ({type(e).__name__})")
            status, content_type = 502, "application/json"
            body = responses.error_body(502, None, "Mistral's answer to the chat completion could not be translated")
        if status != resp.status_code:
            resp.status_code, resp.reason = status, status_codes.RESPONSES.get(status, "")
        resp.headers["content-type"] = content_type
        resp.content = body


class Answers:
    """Mistral's answers to matched requests, in the shapes OpenAI clients read (mistral_compat/answers.py):
    chat-shaped answers, JSON or event streams translated as they arrive, and error bodies given OpenAI's
    error object. Event streams are passed on as they arrive, never buffered."""

    MODES = ("auto", "openai", "mistral")

    def __init__(self) -> None:
        self.mode = "auto"
        self.native: tuple[str, ...] = ()
        self.dry_run = False

    def load(self, loader) -> None:
        loader.add_option(
            name="mistral_answers", typespec=str, default="auto", choices=self.MODES,
            help="How Mistral's answers reach clients. auto: translated into the shapes OpenAI clients read "
                 "(text content with reasoning_content, tool-call type and index, finish_reason length, "
                 "OpenAI's error object), except for Mistral-native clients (the mistralai SDKs and "
                 "mistral_native_clients); openai: always translated; mistral: never.",
        )
        loader.add_option(
            name="mistral_native_clients", typespec=Sequence[str], default=[],
            help="User-Agent substrings (case-insensitive) of clients that read Mistral's own answer shapes, "
                 "besides the mistralai SDKs; with mistral_answers=auto their answers are left as they are.",
        )

    def configure(self, updated) -> None:
        if "mistral_answers" in updated:
            mode = ctx.options.mistral_answers
            if mode not in self.MODES:  # (a value set before the addon loaded is not checked by mitmproxy)
                option_error(self, f"mistral_answers: {mode!r} is not one of {', '.join(self.MODES)}")
            else:
                self.mode = mode
        if "mistral_native_clients" in updated:
            self.native = tuple(s.strip().lower() for s in ctx.options.mistral_native_clients if s.strip())
        if "mistral_dry_run" in updated:
            self.dry_run = ctx.options.mistral_dry_run
        configured(self)

    def request(self, flow: http.HTTPFlow) -> None:
        if flow.error or not flow.live:
            return
        info = flow.metadata[META]
        if info.get("endpoint") == "responses" or info.get("preflight") or self.mode == "mistral":
            return  # (the Responses bridge translates its answers itself)
        if self.mode == "auto" and answers.is_mistral_native(header(flow.request.headers, b"user-agent"),
                                                             self.native):
            return
        info["answers"] = "chat" if info.get("endpoint") in answers.ENDPOINTS else "errors"

    def responseheaders(self, flow: http.HTTPFlow) -> None:
        info = flow.metadata[META]
        resp = flow.response
        if flow.error or not flow.live or resp is None or "bridge" in info:
            return
        kind = info.get("answers")
        ok = 200 <= resp.status_code < 300
        if not header(resp.headers, b"content-type").startswith("text/event-stream"):
            if kind == "chat" or (kind and not ok):
                resp.stream = False  # translated whole in `response` (even where stream_large_bodies would stream it)
            return
        if kind != "chat" or not ok:
            resp.stream = True
            return
        coding = header(resp.headers, b"content-encoding").strip().lower()
        decoder = None
        if coding and coding != "identity":
            try:
                decoder = Decoder(coding)
            except ValueError:
                logger.info(f"mistral-compat: an event stream in Content-Encoding {coding!r} is passed on "
                            f"untranslated")
                resp.stream = True
                return
        translator = info["answer_stream"] = answers.StreamTranslator()
        if self.dry_run:  # the bytes pass as they came: so do the headers
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
                    text = data
                    if decoder is not None:
                        text = decoder.feed(data) if data else decoder.close()
                    out = translator.feed(text)
                    if not data:
                        out += translator.close()
                except Exception as e:  # a safety net: never an exception in mitmproxy's stream
                    broken = True
                    logger.warning(f"mistral-compat: an event stream could not be {'decoded' if decoder else 'read'} "
                                   f"({type(e).__name__}: {report.printable(str(e))}); "
                                   + ("it was passed on as it came" if dry_run or decoder is None
                                      else "it ends here"))
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

    def response(self, flow: http.HTTPFlow) -> None:
        info = flow.metadata[META]
        resp = flow.response
        kind = info.get("answers")
        if not kind or not flow.live or resp is None or info.get("rejected") or info.get("preflight"):
            return
        if resp.stream:
            translator = info.pop("answer_stream", None)
            if translator is not None and translator.notes:
                info["answer_notes"] = translator.notes.list()
            return
        if kind == "errors" and resp.status_code < 400:
            return
        try:
            content = (resp.get_content(strict=False) if header(resp.headers, b"content-encoding")
                       else resp.raw_content) or b""
            new, notes = answers.translate_json(resp.status_code, content)
        except Exception as e:  # a safety net: the answer is passed on as it came
            logger.warning(f"mistral-compat: an answer could not be translated ({type(e).__name__}: {e})")
            return
        if notes:
            info["answer_notes"] = notes
        if new is not None and not self.dry_run:
            info["answer_original"] = content
            resp.content = new


class RequestLog:
    """The per-request log lines, written in batches: one log record per FLUSH_DELAY at most, holding
    every line since the last one (each line still one request). A log record costs far more than its
    text: mitmproxy formats it for each of its handlers and dispatches a legacy add_log event to every
    addon; one record per request alone would cost about 5% of a proxied request."""

    FLUSH_DELAY = 0.2  # seconds a line may wait for others

    def __init__(self) -> None:
        self.pending: list[tuple[int, str]] = []
        self.timer: asyncio.TimerHandle | None = None

    def add(self, level: int, line: str) -> None:
        self.pending.append((level, line))
        if self.timer is None:
            try:
                self.timer = asyncio.get_running_loop().call_later(self.FLUSH_DELAY, self.flush)
            except RuntimeError:  # no event loop (not running under mitmproxy): write it now
                self.flush()

    def flush(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        pending, self.pending = self.pending, []
        start = 0
        for i in range(1, len(pending) + 1):  # one record per run of lines at the same level
            if i == len(pending) or pending[i][0] != pending[start][0]:
                logger.log(pending[start][0], "\n".join(line for _, line in pending[start:i]))
                start = i


class Report:
    """Tells people what was changed: a log line, a flow comment and marker, a before/after content
    view, and a per-client summary when mitmdump stops."""

    def __init__(self) -> None:
        self.summary = report.Summary()
        self.view = BeforeAfterView()
        self.log = RequestLog()
        self.debug = False
        self.dry_run = False

    def configure(self, updated) -> None:
        if "termlog_verbosity" in updated:
            self.debug = getattr(ctx.options, "termlog_verbosity", "info") == "debug"
        if "mistral_dry_run" in updated:
            self.dry_run = ctx.options.mistral_dry_run

    def running(self) -> None:
        contentviews.add(self.view)

    def done(self) -> None:
        self.log.flush()
        if not hasattr(contentviews, "Contentview"):  # mitmproxy 11; 12 has no removal (and replaces by name)
            try:
                contentviews.remove(self.view)
            except (KeyError, ValueError):  # not registered
                pass
        table = self.summary.table()
        if table:
            logger.info(table)

    def request(self, flow: http.HTTPFlow) -> None:
        info = flow.metadata.get(META)
        if info is None or not flow.live:
            return
        client = info["client"]
        self.summary.matched(client)
        endpoint = info.get("endpoint")
        if endpoint is None:
            return
        dry = info.get("dry_run", False)
        changes = info.get("changes")
        rejected = info.get("rejected")
        if rejected:
            self.summary.rejected(client)
            self.log.add(logging.WARNING, report.rejected_line(endpoint, client, info.get("reject_status", 400),
                                                               rejected, dry))
        elif changes:
            self.summary.changed(client, changes)
            self.log.add(logging.INFO, report.log_line(endpoint, client, changes, dry))
            flow.comment = report.comment(changes, dry)
            flow.marked = MARKER
            if self.debug:
                self.log.add(logging.DEBUG, report.before_after(info["original"],
                                                                None if dry else flow.request.content, changes))

    def response(self, flow: http.HTTPFlow) -> None:
        info = flow.metadata[META]
        notes = info.get("answer_notes")
        if not notes or not flow.live:
            return
        dry = info.get("dry_run", self.dry_run)
        client = info["client"]
        endpoint = info.get("endpoint") or flow.request.path.partition("?")[0]
        self.summary.answered(client, notes)
        self.log.add(logging.INFO, report.answer_line(endpoint, client, notes, dry))
        note = report.answer_comment(notes, dry)
        flow.comment = f"{flow.comment}\n\n{note}" if flow.comment else note
        flow.marked = MARKER
        if self.debug and "answer_original" in info and flow.response is not None:
            self.log.add(logging.DEBUG, report.answer_before_after(info["answer_original"],
                                                                   flow.response.content, notes))


def _view_text(data: bytes, flow, http_message) -> str | None:
    info = getattr(flow, "metadata", {}).get(META) if flow is not None else None
    if not info:
        return None
    if http_message is getattr(flow, "response", None) and http_message is not None:
        if "answer_original" not in info:
            return None
        return report.answer_before_after(info["answer_original"], data, info.get("answer_notes", []))
    if "original" not in info or http_message is not getattr(flow, "request", None):
        return None
    changes = [Change(*c) for c in info.get("changes", [])]
    return report.before_after(info["original"], None if info.get("dry_run") else data, changes)


if hasattr(contentviews, "Contentview"):  # mitmproxy 12
    class BeforeAfterView(contentviews.Contentview):
        name = "mistral-compat"

        def prettify(self, data: bytes, metadata) -> str:
            text = _view_text(data, metadata.flow, metadata.http_message)
            if text is None:
                raise ValueError("not a request changed by mistral-compat")
            return text

        def render_priority(self, data: bytes, metadata) -> float:
            return 2.0 if _view_text(b"", metadata.flow, metadata.http_message) is not None else -1
else:  # mitmproxy 11
    class BeforeAfterView(contentviews.View):
        name = "mistral-compat"

        def __call__(self, data, *, flow=None, http_message=None, **_):
            text = _view_text(data, flow, http_message)
            if text is None:
                return "mistral-compat", contentviews.format_text(b"not a request changed by mistral-compat")
            return "mistral-compat: before / after", contentviews.format_text(text)

        def render_priority(self, data, *, flow=None, http_message=None, **_) -> float:
            return 2.0 if _view_text(b"", flow, http_message) is not None else -1


class _RedactingFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "mistral_compat_redacted", False):
            return True  # done already, for another handler
        record.mistral_compat_redacted = True
        msg = record.getMessage()
        clean = redact_text(msg)
        if clean is not msg and clean != msg:
            record.msg, record.args = clean, ()
        return True


class _RedactingWriter:
    """Wraps the dumper's output stream (the flow lines mitmdump prints) with the same redaction."""

    def __init__(self, inner) -> None:
        self._inner = inner

    def write(self, text: str) -> int:
        return self._inner.write(redact_text(text))

    def __getattr__(self, name):
        return getattr(self._inner, name)


class Redaction:
    """Keeps API keys out of every log line mitmproxy prints, at any verbosity and flow_detail."""

    def __init__(self) -> None:
        self.filter = _RedactingFilter()

    def running(self) -> None:
        for handler in logging.getLogger().handlers:
            if self.filter not in handler.filters:
                handler.addFilter(self.filter)
        dumper = ctx.master.addons.get("dumper")
        if dumper is not None and hasattr(dumper, "outfp") and not isinstance(dumper.outfp, _RedactingWriter):
            dumper.outfp = _RedactingWriter(dumper.outfp)

    def done(self) -> None:
        for handler in logging.getLogger().handlers:
            handler.removeFilter(self.filter)


class MistralCompat:
    """The one object registered with mitmproxy, handing each hook to the parts that have it, in order
    (done in reverse: the log lines still pending are written before Redaction lets go of the handlers).

    mitmproxy visits every registered addon object on every event of every connection and flow (TLS,
    connects, disconnects, ...); eight registered parts would cost more per request than most of the
    work itself. A flow that the matcher does not mark as bound for Mistral goes to no other part."""

    def __init__(self, matcher: Matcher, *parts) -> None:
        self.matcher = matcher
        self.parts = (matcher, *parts)
        self.hooks: dict[str, list] = {}

    def _each(self, hook: str) -> list:
        if hook not in self.hooks:  # looked up on first use, after any instrumentation of the parts
            self.hooks[hook] = [getattr(p, hook) for p in self.parts if callable(getattr(p, hook, None))]
        return self.hooks[hook]

    def load(self, loader) -> None:
        for hook in self._each("load"):
            hook(loader)

    def configure(self, updated) -> None:
        for hook in self._each("configure"):
            hook(updated)

    def running(self) -> None:
        for hook in self._each("running"):
            hook()

    def done(self) -> None:
        for hook in reversed(self._each("done")):
            hook()

    def requestheaders(self, flow: http.HTTPFlow) -> None:
        hooks = self._each("requestheaders")  # the matcher's first: it marks the flow
        hooks[0](flow)
        if META in flow.metadata:
            for hook in hooks[1:]:
                hook(flow)

    def request(self, flow: http.HTTPFlow) -> None:
        if META in flow.metadata:
            for hook in self._each("request"):
                hook(flow)

    def responseheaders(self, flow: http.HTTPFlow) -> None:
        if META in flow.metadata:
            for hook in self._each("responseheaders"):
                hook(flow)

    def response(self, flow: http.HTTPFlow) -> None:
        if META in flow.metadata:
            for hook in self._each("response"):
                hook(flow)


_rewriter = Rewriter()
addons = [MistralCompat(Matcher(), Redaction(), InterceptScope(), Cors(), ResponsesBridge(_rewriter), _rewriter,
                        Answers(), Report())]
