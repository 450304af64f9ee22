"""mistral-compat: make OpenAI-compatible requests acceptable to Mistral's API.

    mitmdump -s addon.py                                   # as an HTTP(S) proxy
    mitmdump -s addon.py --mode reverse:https://api.mistral.ai --set connection_strategy=lazy

This file is the thin mitmproxy layer: it declares the options (mistral_compat/settings.py), reads and writes
flows, and applies what the pure core (the mistral_compat package beside it) decides. Each flow bound for
Mistral carries a FlowState (mistral_compat/state.py) under flow.metadata[META]: the Matcher writes it when the
request's headers arrive, and every other part reads it.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time

from mitmproxy import ctx, exceptions, http
from mitmproxy.net.http import status_codes
from mitmproxy.proxy import mode_specs

import mitmcompat
from mistral_compat import answers, errors, models, pacing, redirect, report, responses, settings, state
from mistral_compat.changes import Change
from mistral_compat.encoding import CODINGS, Decoder, read_body
from mistral_compat.hosts import HostSet, allow_patterns
from mistral_compat.redact import redact_text
from mistral_compat.rewrite import rewrite
from mistral_compat.rules import builtin, stop_parsing
from mistral_compat.rules import load as load_rules
from mistral_compat.state import FlowState

logger = logging.getLogger(__name__)

META = "mistral_compat"  # flow.metadata key of the FlowState
MARKER = ":wrench:"      # flow.marked on changed flows: stands out in mitmweb's and the console's flow list


# --- reading and writing flows --------------------------------------------------------------------------

def header(headers: http.Headers, name: bytes, default: str = "") -> str:
    """The first value of a header (name in lower case): one plain pass over the raw fields, several
    times cheaper than a Headers lookup, which converts every name it passes. Only on the hot path."""
    for key, value in headers.fields:
        if key.lower() == name:
            return value.decode("utf-8", "surrogateescape")
    return default


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


def reject(flow: http.HTTPFlow, st: FlowState, status: int, message: str, body: bytes) -> None:
    """Answer a matched request from the proxy itself (unless in a dry run), and note why for Report."""
    st.rejected = (status, message)
    if not st.dry_run:
        flow.response = http.Response.make(status, body, {"content-type": "application/json"})


def backup(flow: http.HTTPFlow) -> None:
    """Keep the flow as the client sent it for mitmweb's and the console's "revert", when one of them
    shows the flows (a backup copies the whole flow: too dear for mitmdump, which cannot revert)."""
    if ctx.master.addons.get("view") is not None:
        flow.backup()


def keeps_flows() -> bool:
    """Whether flows are kept where people read their comments: mitmweb's or the console's flow list (an addon
    named "view"), or a file (-w). mitmdump alone prints no comment, so none is written there."""
    return ctx.master.addons.get("view") is not None or bool(getattr(ctx.options, "save_stream_file", None))


# --- the parts -------------------------------------------------------------------------------------------

class Options:
    """Declares every mistral_* option (mistral_compat/settings.py) and parses each into the shared Settings."""

    def __init__(self, conf: settings.Settings) -> None:
        self.settings = conf
        self.started = False  # the first configure (start-up) is over

    def load(self, loader) -> None:
        for o in settings.OPTIONS:
            loader.add_option(name=o.name, typespec=o.typespec, default=o.default, help=o.help, choices=o.choices)

    def configure(self, updated) -> None:
        for name in sorted(updated & settings.NAMES):
            try:
                self.settings.set(name, getattr(ctx.options, name))
            except ValueError as e:
                self.refuse(f"{name}: {e}")
        if "mistral_redirect_openai" in updated:
            self.api_key()
        self.started = True

    def api_key(self) -> None:
        """With mistral_redirect_openai, the Mistral key from the environment (never from an option: options are
        printed by mitmproxy's `options` command and saved by mitmweb)."""
        conf = self.settings
        conf.api_key = None
        Redaction.secrets = ()
        if not conf.redirect_openai:
            return
        key = os.environ.get(API_KEY_ENV, "").strip()
        if not key:
            self.refuse(f"mistral_redirect_openai needs your Mistral API key in the environment variable {API_KEY_ENV} "
                       f"(the proxy sends it to {conf.redirect_to} instead of the app's own key): set it, "
                       f"e.g. export {API_KEY_ENV}=..., and start again")
        elif not key.isascii() or not key.isprintable() or " " in key:
            self.refuse(f"the environment variable {API_KEY_ENV} does not hold an API key (it has spaces or "
                       f"characters an HTTP header cannot carry)")
        else:
            conf.api_key = key
            Redaction.secrets = (key,)

    def refuse(self, message: str) -> None:
        """A bad option value. mitmproxy prints whatever a script's configure raises while it loads the script
        (start-up) with a traceback; so at the first configure the message is logged as an error instead, and
        mitmdump/mitmweb stop with "Error logged during startup" (exit code 1). Later (an option changed at run
        time) OptionsError is raised: mitmproxy refuses the change and keeps the value before it."""
        if self.started:
            raise exceptions.OptionsError(message)
        logger.error(f"OptionsError: {message}")

    def running(self) -> None:
        for name in sorted(k for k in getattr(ctx.options, "deferred", {}) if k.startswith("mistral_")):
            logger.warning(f"Unknown option {name!r} ignored: mistral-compat has no such option "
                           f"(its options are listed in the README).")


class Matcher:
    """Decides which flows are bound for Mistral, and what each is (state.classify), once: the FlowState."""

    def __init__(self, conf: settings.Settings) -> None:
        self.settings = conf

    def requestheaders(self, flow: http.HTTPFlow) -> None:
        if flow.response or flow.error or not flow.live:
            return
        req = flow.request
        if req.host in self.settings.hosts or isinstance(flow.client_conn.proxy_mode, mode_specs.ReverseMode):
            kind, endpoint = state.classify(req.method, req.path, self.settings.rules)
            ua = header(req.headers, b"user-agent")
            st = flow.metadata[META] = FlowState(report.printable(ua, 80) if ua else "(no user-agent)", kind,
                                                 endpoint, self.settings.dry_run, user_agent=ua)
            if self.settings.redirect_openai and req.host == redirect.OPENAI_HOST:
                st.redirected = True
        elif META in flow.metadata:  # a replayed copy of a saved flow: what it says belongs to another time
            del flow.metadata[META]


class InterceptScope:
    """As a forward proxy, TLS-intercept only the matched hosts; tunnel every other host untouched.

    Built on mitmproxy's own allow_hosts, derived from the matched hosts. A user's own allow_hosts or
    ignore_hosts wins; mistral_intercept_all turns the scoping off.
    """

    def __init__(self, conf: settings.Settings) -> None:
        self.settings = conf
        self.owned: list[str] | None = None  # the allow_hosts value this addon set, while it is in force

    def running(self) -> None:
        self.apply()

    def configure(self, updated) -> None:
        if self.owned is not None and "allow_hosts" in updated and ctx.options.allow_hosts != self.owned:
            self.owned = None  # the user set their own
        if self.owned is not None and updated & {"mistral_hosts", "mistral_intercept_all", "mistral_redirect_openai"}:
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
        hosts = self.settings.hosts
        self.owned = allow_patterns(hosts)
        opts.update(allow_hosts=self.owned)
        logger.info(f"mistral-compat: intercepting TLS only for {', '.join(hosts.patterns)}; "
                    f"every other host is tunnelled untouched (mistral_intercept_all=true intercepts all)")


class RulesLoader:
    """The rules in force (Settings.rules): built in, or from the mistral_openapi file, reloaded when it changes."""

    WATCH_INTERVAL = 1.0  # seconds between checks of mistral_openapi for changes

    def __init__(self, conf: settings.Settings) -> None:
        self.settings = conf
        self.spec_path = ""
        self.spec_stamp: tuple | None = None
        self.watcher: asyncio.Task | None = None

    def configure(self, updated) -> None:
        if "mistral_openapi" not in updated:
            return
        self.spec_path = ctx.options.mistral_openapi
        if not self.spec_path:
            self.spec_stamp = None
            self.settings.rules = builtin()
        elif self.watcher is None:  # start-up: load it now, so that the first request has these rules
            self.spec_stamp = _stamp(self.spec_path)
            self.settings.rules = self.load_spec(self.spec_path)
        else:  # changed while running: the watcher loads it within a second, off the event loop
            self.spec_stamp = ("changed",)

    def running(self) -> None:
        if self.watcher is None:
            self.watcher = asyncio.get_running_loop().create_task(self.watch())

    def done(self) -> None:
        if self.watcher is not None:
            self.watcher.cancel()
            self.watcher = None
        stop_parsing()  # a spec file still being parsed would hold up the exit

    def load_spec(self, path: str, keep=None):
        loaded = load_rules(path, keep)
        for level, message in loaded.messages:
            logger.log(level, message)
        return loaded.rules

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
                    rules = await asyncio.to_thread(load_rules, path, self.settings.rules)
                    for level, message in rules.messages:
                        logger.log(level, message)
                    if path == self.spec_path:
                        self.settings.rules = rules.rules
            except Exception as e:  # load_rules reports its failures itself; this is the last resort
                logger.warning(f"mistral-compat: mistral_openapi: reloading {path} failed "
                               f"({type(e).__name__}: {e}); the rules in force stay")


def _stamp(path: str) -> tuple | None:
    """What tells a changed file: a file replaced by another (a new inode) with the same size and time too."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_mtime_ns, st.st_size, st.st_ino, st.st_ctime_ns


API_KEY_ENV = "MISTRAL_API_KEY"
KEY_SHOWN = f"Bearer [{API_KEY_ENV}]"  # what a redirected flow shows (mitmweb, -w, logs) instead of the key
CLIENT_KEY_HEADERS = ("authorization", "x-api-key", "openai-organization", "openai-project")


class Redirect:
    """Apps locked to api.openai.com, served by Mistral (mistral_redirect_openai, mistral_compat/redirect.py):
    their requests go to mistral_redirect_to with the Mistral key (MISTRAL_API_KEY) instead of theirs,
    OpenAI-only endpoints are answered 404 here, mapped model names listed in /v1/models. Model names in
    bodies are mapped by the Rewriter and the bridge (Settings.model_map, redirected_map)."""

    def __init__(self, conf: settings.Settings) -> None:
        self.settings = conf
        self.injector = KeyInjector(conf)

    def running(self) -> None:
        if ctx.master.addons.get("mistral_compat_key") is None:
            ctx.master.addons.add(self.injector)  # last in mitmproxy's chain: see KeyInjector
        mitmcompat.redact_web(redact)  # (mitmweb: a flow in flight holds the key)
        if self.settings.redirect_openai:
            logger.info(f"mistral-compat: mistral_redirect_openai: requests to {redirect.OPENAI_HOST} are sent to "
                        f"{self.settings.redirect_to} with the key in {API_KEY_ENV}, never the app's own key")

    def requestheaders(self, flow: http.HTTPFlow, st: FlowState) -> None:
        if not st.redirected or flow.error or not flow.live:
            return
        req = flow.request
        refused = redirect.origin_refused(header(req.headers, b"origin", None), self.settings.cors.origins)
        if refused is not None:  # a web page: refused, its CORS preflight too (Cors answered it 204), dry run or not
            st.rejected = (redirect.FORBIDDEN_STATUS, refused)
            flow.response = http.Response.make(redirect.FORBIDDEN_STATUS, redirect.refused_body(refused),
                                               {"content-type": "application/json"})
            return
        if st.kind == state.PREFLIGHT or flow.response:
            return
        feature = redirect.openai_only(req.path, req.method)
        if feature is not None:  # (a dry run too: there is nowhere to forward it)
            st.rejected = (404, f"{redirect.FEATURES.get(feature, feature)}: no Mistral counterpart")
            flow.response = http.Response.make(404, redirect.not_found_body(req.path, feature, req.method),
                                               {"content-type": "application/json"})
            return
        name = redirect.model_id(req.path) if req.method == "GET" else None
        local = models.retrieve_model(name, self.settings.redirected_map) if name else None
        if local is not None:  # GET /v1/models/gpt-4o: Mistral knows no such model; the proxy does
            flow.response = http.Response.make(200, local, {"content-type": "application/json"})

    def request(self, flow: http.HTTPFlow, st: FlowState) -> None:
        if not st.redirected or flow.response or flow.error or not flow.live:
            return
        req, target = flow.request, self.settings.redirect_to
        for name in CLIENT_KEY_HEADERS:  # the app's own key never goes anywhere
            req.headers.pop(name, None)
        req.scheme, req.host, req.port = target.scheme, target.host, target.port
        st.key = pacing.key_id(self.settings.api_key or "")  # paced as the Mistral key it is sent with

    def responseheaders(self, flow: http.HTTPFlow, st: FlowState) -> None:
        if st.redirected:
            self.hide_key(flow)

    def response(self, flow: http.HTTPFlow, st: FlowState) -> None:
        resp = flow.response
        if not st.redirected or resp is None or resp.status_code != 200 or flow.request.method != "GET":
            return
        if redirect.route(flow.request.path) == ("models",):  # Mistral's list, and the OpenAI names mapped
            merged = models.merge_models(resp.get_content(strict=False) or b"", self.settings.redirected_map)
            if merged is not None:
                resp.content = merged

    def error(self, flow: http.HTTPFlow, st: FlowState) -> None:
        if st.redirected:
            self.hide_key(flow)

    def done(self) -> None:
        """mitmdump stops: the flows still waiting for an answer lose the key too, before mitmproxy's Save
        (after this script in the chain) writes them to the -w file."""
        for flow in list(self.injector.in_flight):
            self.hide_key(flow)

    def hide_key(self, flow: http.HTTPFlow) -> None:
        """Once the request is sent: the key leaves the flow (mitmweb, a flow file, the dumper show it after)."""
        self.injector.in_flight.discard(flow)
        if "authorization" in flow.request.headers:
            flow.request.headers["authorization"] = KEY_SHOWN


class KeyInjector:
    """Puts the Mistral key on a redirected request as the very last thing before it is sent: mitmproxy's own
    addons (mitmweb's flow list among them) come after this script in its chain, so this small addon is added
    at the end of the chain, after them. Redirect.hide_key takes the key out again once the request is sent."""

    name = "mistral_compat_key"

    def __init__(self, conf: settings.Settings) -> None:
        self.settings = conf
        # the flows holding the key, until Redirect.hide_key (answer headers, error, or mitmdump's end) takes
        # it out: as mitmproxy's Save tracks the flows it has yet to write
        self.in_flight: set[http.HTTPFlow] = set()

    def request(self, flow: http.HTTPFlow) -> None:
        st = flow.metadata.get(META)
        if st.__class__ is FlowState and st.redirected and self.settings.api_key and not flow.response \
                and flow.error is None and flow.live:
            flow.request.headers["authorization"] = f"Bearer {self.settings.api_key}"
            self.in_flight.add(flow)


class Cors:
    """Answers preflights itself and puts CORS headers (mistral_compat/cors.py) on every answer to a matched
    request."""

    def __init__(self, conf: settings.Settings) -> None:
        self.settings = conf

    def requestheaders(self, flow: http.HTTPFlow, st: FlowState) -> None:
        if st.kind == state.PREFLIGHT and not flow.response and not flow.error and flow.live:
            flow.response = http.Response.make(204, b"", {"server": "mistral-compat"})

    def responseheaders(self, flow: http.HTTPFlow, st: FlowState) -> None:
        resp = flow.response
        if flow.error or not flow.live or resp is None:
            return
        headers = flow.request.headers
        preflight = None
        if st.kind == state.PREFLIGHT:
            preflight = (header(headers, b"access-control-request-method"),
                         header(headers, b"access-control-request-headers"))
        resp.headers.fields = self.settings.cors.answer_fields(resp.headers.fields, header(headers, b"origin", None),
                                                               preflight)


def _body(flow: http.HTTPFlow, st: FlowState, max_body: int) -> bytes | None:
    """The request body for the rewrite (decoded, within max_body), or None when it cannot be used: then the
    flow has been rejected (413, 400), or the body was streamed past the addon (logged)."""
    req = flow.request
    raw = req.raw_content
    if raw is None:
        logger.warning(f"mistral-compat {st.endpoint}: the request body was streamed (stream_large_bodies?), "
                       f"so it could not be {'translated' if st.kind == state.BRIDGE else 'rewritten'}")
        return None
    # (several Content-Encoding fields are joined by ", ", as mitmproxy's get() does)
    coding = req.headers.get("content-encoding", "") if header(req.headers, b"content-encoding") else ""
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

    def request(self, flow: http.HTTPFlow, st: FlowState) -> None:
        if st.kind != state.REWRITE or flow.response or flow.error or not flow.live:
            return
        body = _body(flow, st, self.settings.max_body)
        if body is None:
            return
        conf = self.settings
        result = rewrite(conf.rules, st.endpoint, body, conf.redirected_map if st.redirected else conf.model_map)
        if result.changes:
            st.changes = result.changes
        if result.error:
            reject(flow, st, 400, result.error, errors.proxy_error(400, result.error))
        elif result.body is not None:
            st.original = body
            if not st.dry_run:
                backup(flow)
                set_body(flow.request, result.body)


class ResponsesBridge:
    """Serves OpenAI's Responses API (POST .../v1/responses) from Mistral's chat completions: the request
    is translated and sent to .../v1/chat/completions, the answer (JSON or event stream) translated back."""

    def __init__(self, conf: settings.Settings) -> None:
        self.settings = conf

    def request(self, flow: http.HTTPFlow, st: FlowState) -> None:
        if st.kind not in (state.BRIDGE, state.STORED) or flow.response or flow.error or not flow.live:
            return
        if st.kind == state.STORED:
            self._reject(flow, st, 404, responses.STORED_MESSAGE)
            return
        if flow.request.raw_content is None:
            self._reject(flow, st, 400, "the request body was streamed past the addon (stream_large_bodies is set "
                                        "below its size), so it cannot be translated")
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
        req.path = responses.match_path(req.path)[1]  # (classify matched it: a "create" path)
        req.headers["accept-encoding"] = "identity"  # the answer is translated: keep it uncompressed
        set_body(req, bridged.body)

    @staticmethod
    def _reject(flow: http.HTTPFlow, st: FlowState, status: int, message: str, param: str | None = None,
                code: str | None = None) -> None:
        reject(flow, st, status, message, responses.error_body(status, None, message, param, code))

    def responseheaders(self, flow: http.HTTPFlow, st: FlowState) -> None:
        resp = flow.response
        if st.bridge is None or flow.error or not flow.live or resp is None:
            return
        coding = header(resp.headers, b"content-encoding").strip().lower()
        if not (200 <= resp.status_code < 300 and header(resp.headers, b"content-type").startswith("text/event-stream")
                and (coding in ("", "identity") or coding in CODINGS)):
            resp.stream = False  # translated whole in `response` (even where stream_large_bodies would stream it)
            return
        translator = responses.StreamTranslator(st.bridge)
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

    def response(self, flow: http.HTTPFlow, st: FlowState) -> None:
        resp = flow.response
        if st.bridge is None or not flow.live or resp is None or resp.stream:
            return
        try:
            status, content_type, body = responses.translate_answer(
                resp.status_code, header(resp.headers, b"content-type"), resp.get_content(strict=False) or b"",
                st.bridge)
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

    def __init__(self, conf: settings.Settings) -> None:
        self.settings = conf

    def requestheaders(self, flow: http.HTTPFlow, st: FlowState) -> None:
        mode = self.settings.answer_mode
        if st.kind in (state.BRIDGE, state.STORED, state.PREFLIGHT) or mode == "mistral":
            return  # (the Responses bridge translates its answers itself)
        if mode == "auto" and answers.is_mistral_native(st.user_agent, self.settings.native_clients):
            return
        st.answers = state.CHAT_ANSWERS if st.endpoint in answers.ENDPOINTS else state.ERROR_ANSWERS

    def responseheaders(self, flow: http.HTTPFlow, st: FlowState) -> None:
        resp = flow.response
        kind = st.answers
        if kind is None or flow.error or not flow.live or resp is None:
            return
        ok = 200 <= resp.status_code < 300
        if not header(resp.headers, b"content-type").startswith("text/event-stream"):
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
                logger.info(f"mistral-compat: an event stream in Content-Encoding {coding!r} is passed on "
                            f"untranslated")
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

    def response(self, flow: http.HTTPFlow, st: FlowState) -> None:
        resp = flow.response
        kind = st.answers
        if kind is None or not flow.live or resp is None or st.rejected or st.kind == state.PREFLIGHT:
            return
        if resp.stream:
            translator, st.answer_stream = st.answer_stream, None
            if translator is not None and translator.notes:
                st.answer_notes = translator.notes.list()
            return
        if kind == state.ERROR_ANSWERS and resp.status_code < 400:
            return
        try:
            content = (resp.get_content(strict=False) if header(resp.headers, b"content-encoding")
                       else resp.raw_content) or b""
            new, notes = answers.translate_json(resp.status_code, content)
        except Exception as e:  # a safety net: the answer is passed on as it came
            logger.warning(f"mistral-compat: an answer could not be translated ({type(e).__name__}: {e})")
            return
        if notes:
            st.answer_notes = notes
        if new is not None and not st.dry_run:
            st.answer_original = content
            resp.content = new


class Pacing:
    """Paces the requests bound for Mistral per API key (mistral_rate_limit, mistral_compat/pacing.py), and
    holds a key's requests after Mistral answers it 429, until its Retry-After. A waiting request waits in
    an async hook: the event loop, other keys, other hosts and the proxy's own answers go on."""

    def __init__(self, conf: settings.Settings) -> None:
        self.settings = conf
        self.pacer = pacing.Pacer(None)

    def configure(self, updated) -> None:
        if "mistral_rate_limit" in updated:
            self.pacer.set_rate(self.settings.rate)

    def running(self) -> None:
        rate = self.settings.rate
        if rate is not None:
            logger.info(f"mistral-compat: pacing requests to Mistral to {rate} per API key (mistral_rate_limit); "
                        f"a request that would wait more than {self.pacer.max_wait:.0f} s is answered 429")

    def done(self) -> None:
        self.pacer.close()

    def request(self, flow: http.HTTPFlow, st: FlowState):
        """None (go now), or a coroutine for the composite to await: the wait for this key's turn."""
        if not self.pacer.active or flow.response or flow.error or not flow.live:
            return None  # (no rate and no key held: nothing to look up; local answers never wait)
        if st.key is None:  # (a redirected request: the Mistral key's id, set by Redirect)
            st.key = pacing.key_from_headers(flow.request.headers)
        return self._wait(flow, st)

    async def _wait(self, flow: http.HTTPFlow, st: FlowState) -> None:
        conn = flow.client_conn
        try:
            wait = await self.pacer.acquire(st.key, gone=lambda: not conn.connected or flow.error is not None)
        except pacing.QueueFull as e:  # (a dry run too: pacing is not a change to the body)
            message = self._full_message(e)
            st.rejected = (429, message)
            flow.response = http.Response.make(429, errors.proxy_error(429, message), {
                "content-type": "application/json", "retry-after": e.retry_after_header()})
            return
        except pacing.ClientGone:
            st.gone = True
            if flow.killable:
                flow.kill()  # the client left while it waited: the request is not sent
            return
        st.waited = float(wait)
        st.wait_note = pacing.wait_note(wait, self.settings.rate)

    def _full_message(self, e: pacing.QueueFull) -> str:
        if e.reason == "hold":
            return (f"Mistral answered 429 (rate limited) for this API key and asked to wait; the proxy holds the "
                    f"key's requests for {e.retry_after:.0f} s more, longer than it lets a request wait "
                    f"({self.pacer.max_wait:.0f} s): retry after that")
        return (f"the proxy's queue for this API key was full: {e.queued} request(s) were already waiting for "
                f"their turn under mistral_rate_limit {self.settings.rate}, so this one would have waited "
                f"{e.retry_after:.0f} s, more than {self.pacer.max_wait:.0f} s: retry after that")

    def responseheaders(self, flow: http.HTTPFlow, st: FlowState) -> None:
        resp = flow.response
        if resp is None or resp.status_code != 429 or not flow.live or st.rejected:
            return  # (not Mistral's 429: the proxy's own answers are marked rejected)
        if st.key is None:
            st.key = pacing.key_from_headers(flow.request.headers)
        hold = pacing.parse_retry_after(header(resp.headers, b"retry-after", None), time.time())
        self.pacer.hold(st.key, hold)
        st.limited = True


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

    def __init__(self, conf: settings.Settings) -> None:
        self.settings = conf
        self.summary = report.Summary()
        self.view = BeforeAfterView()
        self.log = RequestLog()
        self.debug = False
        self.comments = True  # flows are kept where a comment can be read

    def configure(self, updated) -> None:
        if "termlog_verbosity" in updated:
            self.debug = getattr(ctx.options, "termlog_verbosity", "info") == "debug"
        if "save_stream_file" in updated:
            self.comments = keeps_flows()

    def running(self) -> None:
        mitmcompat.add_view(self.view)
        self.comments = keeps_flows()
        self.summary.pacing = self.settings.rate is not None

    def done(self) -> None:
        self.log.flush()
        mitmcompat.remove_view(self.view)
        table = self.summary.table()
        if table:
            logger.info(table)

    def request(self, flow: http.HTTPFlow, st: FlowState) -> None:
        if not flow.live and not st.gone:  # (a request whose client left while it waited is killed)
            return
        client = st.client
        self.summary.matched(client)
        if st.waited:
            self.summary.waited(client, st.waited)
        endpoint = st.endpoint
        if endpoint is None or st.gone:
            if st.wait_note or st.gone or st.rejected:  # a paced request to another path (GET /v1/models)
                self._paced(flow, st, endpoint or flow.request.path.partition("?")[0])
            return
        if st.rejected:
            self.summary.rejected(client)
            if st.rejected[0] == 429:
                self.summary.limited(client)
            self.log.add(logging.WARNING, report.rejected_line(endpoint, client, *st.rejected, st.dry_run))
        elif st.changes:
            self.summary.changed(client, st.changes)
            line = report.log_line(endpoint, client, st.changes, st.dry_run)
            self.log.add(logging.INFO, f"{line}; {st.wait_note}" if st.wait_note else line)
            if self.comments:
                flow.comment = report.comment(st.changes, st.dry_run, st.wait_note)
            flow.marked = MARKER
            if self.debug:
                self.log.add(logging.DEBUG, report.before_after(st.original, None if st.dry_run
                                                                else flow.request.content, st.changes))
            return
        self._paced(flow, st, endpoint, rejected_logged=True)

    def _paced(self, flow: http.HTTPFlow, st: FlowState, endpoint: str, rejected_logged: bool = False) -> None:
        """The log line and comment of a request that waited, left while waiting, or was refused for a full
        queue, when it has no other line."""
        if st.gone:
            self.log.add(logging.INFO, report.wait_line(endpoint, st.client, (st.wait_note or "waited") +
                                                        "; the client left before its turn: not sent"))
        elif st.rejected and not rejected_logged:
            if st.rejected[0] == 429:
                self.summary.limited(st.client)
            self.log.add(logging.WARNING, report.rejected_line(endpoint, st.client, *st.rejected, st.dry_run))
        elif st.wait_note and not st.rejected:
            self.log.add(logging.INFO, report.wait_line(endpoint, st.client, st.wait_note))
            if self.comments:
                flow.comment = f"mistral-compat: {st.wait_note}"

    def response(self, flow: http.HTTPFlow, st: FlowState) -> None:
        if st.limited:
            self.summary.limited(st.client)
        notes = st.answer_notes
        if not notes or not flow.live:
            return
        endpoint = st.endpoint or flow.request.path.partition("?")[0]
        self.summary.answered(st.client, notes)
        self.log.add(logging.INFO, report.answer_line(endpoint, st.client, notes, st.dry_run))
        if self.comments:
            note = report.answer_comment(notes, st.dry_run)
            flow.comment = f"{flow.comment}\n\n{note}" if flow.comment else note
        flow.marked = MARKER
        if self.debug and st.answer_original is not None and flow.response is not None:
            self.log.add(logging.DEBUG, report.answer_before_after(st.answer_original, flow.response.content, notes))


def _view_text(data: bytes, flow, http_message) -> str | None:
    """The mistral-compat content view of a live or saved flow's request or answer; None: nothing to show."""
    st = FlowState.from_saved(getattr(flow, "metadata", {}).get(META)) if flow is not None else None
    if st is None:
        return None
    if http_message is getattr(flow, "response", None) and http_message is not None:
        if st.answer_original is None:
            return None
        return report.answer_before_after(st.answer_original, data, st.answer_notes)
    if st.original is None or http_message is not getattr(flow, "request", None):
        return None
    return report.before_after(st.original, None if st.dry_run else data, st.changes)


class BeforeAfterView(mitmcompat.TextView):
    """The "mistral-compat" content view: a changed request or translated answer, before and after."""

    def __init__(self) -> None:
        super().__init__(_view_text)


def redact(text: str) -> str:
    """redact_text (keys by their header names and shapes), and the keys the proxy itself holds, by value."""
    text = redact_text(text)
    for secret in Redaction.secrets:
        if secret in text:
            text = text.replace(secret, f"[{API_KEY_ENV}]")
    return text


class _RedactingFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "mistral_compat_redacted", False):
            return True  # done already, for another handler
        record.mistral_compat_redacted = True
        msg = record.getMessage()
        clean = redact(msg)
        if clean is not msg and clean != msg:
            record.msg, record.args = clean, ()
        return True


class _RedactingWriter:
    """Wraps the dumper's output stream (the flow lines mitmdump prints) with the same redaction."""

    def __init__(self, inner) -> None:
        self._inner = inner

    def write(self, text: str) -> int:
        return self._inner.write(redact(text))

    def __getattr__(self, name):
        return getattr(self._inner, name)


class Redaction:
    """Keeps API keys out of every log line mitmproxy prints, at any verbosity and flow_detail."""

    secrets: tuple[str, ...] = ()  # keys the proxy itself holds (MISTRAL_API_KEY), replaced wherever they appear

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


# --- the one registered addon ----------------------------------------------------------------------------

FLOW_HOOKS = ("requestheaders", "request", "responseheaders", "response", "error")


class MistralCompat:
    """The one object registered with mitmproxy, handing each hook to the parts that have it, in order
    (done in reverse: the log lines still pending are written before Redaction lets go of the handlers).

    mitmproxy visits every registered addon object on every event of every connection and flow (TLS,
    connects, disconnects, ...); ten registered parts would cost more per request than most of the work
    itself. The matcher's requestheaders comes first and writes the flow's FlowState; a flow without one
    goes to no other part, and the parts' flow hooks are handed it: hook(flow, state)."""

    def __init__(self, matcher: Matcher, *parts) -> None:
        self.matcher = matcher
        self.parts = (matcher, *parts)
        self.hooks: dict[str, list] = {}

    def _each(self, hook: str) -> list:
        if hook not in self.hooks:  # looked up on first use, after any instrumentation of the parts
            parts = self.parts[1:] if hook in FLOW_HOOKS else self.parts
            self.hooks[hook] = [getattr(p, hook) for p in parts if callable(getattr(p, hook, None))]
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
        self.matcher.requestheaders(flow)
        st = flow.metadata.get(META)
        if st.__class__ is FlowState:
            for hook in self._each("requestheaders"):
                hook(flow, st)

    def request(self, flow: http.HTTPFlow):
        """A part's request hook may return an awaitable (Pacing: the wait for a key's turn); then this returns a
        coroutine, which mitmproxy awaits, and the parts after it run when it is done."""
        st = flow.metadata.get(META)
        if st.__class__ is FlowState:
            hooks = self._each("request")
            for i, hook in enumerate(hooks):
                waiting = hook(flow, st)
                if waiting is not None:
                    return self._resume(waiting, hooks[i + 1:], flow, st)
        return None

    @staticmethod
    async def _resume(waiting, hooks: list, flow: http.HTTPFlow, st: FlowState) -> None:
        try:
            await waiting
        except asyncio.CancelledError:  # the client left while it waited (mitmproxy cancels the hook)
            st.gone = True
            for hook in hooks:  # the parts after it still see the flow (Report: "not sent")
                waiting = hook(flow, st)
                if asyncio.iscoroutine(waiting):
                    waiting.close()
            raise
        for hook in hooks:
            waiting = hook(flow, st)
            if waiting is not None:
                await waiting

    def responseheaders(self, flow: http.HTTPFlow) -> None:
        st = flow.metadata.get(META)
        if st.__class__ is FlowState:
            for hook in self._each("responseheaders"):
                hook(flow, st)

    def response(self, flow: http.HTTPFlow) -> None:
        st = flow.metadata.get(META)
        if st.__class__ is FlowState:
            for hook in self._each("response"):
                hook(flow, st)

    def error(self, flow: http.HTTPFlow) -> None:
        st = flow.metadata.get(META)
        if st.__class__ is FlowState:
            for hook in self._each("error"):
                hook(flow, st)


def build() -> MistralCompat:
    """The addon: its parts sharing one Settings, in the order they act on a flow."""
    conf = settings.Settings()
    return MistralCompat(Matcher(conf), Options(conf), RulesLoader(conf), Redaction(), InterceptScope(conf),
                         Cors(conf), Redirect(conf), ResponsesBridge(conf), Rewriter(conf), Answers(conf), Pacing(conf),
                         Report(conf))


addons = [build()]
