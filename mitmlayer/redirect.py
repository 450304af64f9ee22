"""api.openai.com served by Mistral (mistral_redirect_openai): Redirect retargets the requests and answers
OpenAI-only endpoints; KeyInjector, last in mitmproxy's chain, puts the Mistral key on them."""

from __future__ import annotations

from mitmproxy import ctx, http

from mistral_compat import models, pacing, redirect, settings, state
from mistral_compat.state import FlowState

from . import compat, logger
from .flows import META
from .report import API_KEY_ENV, redact

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
        self.running_ = False

    def configure(self, updated) -> None:
        if "mistral_redirect_openai" in updated and self.running_:
            self.add_injector()

    def add_injector(self) -> None:
        """KeyInjector joins mitmproxy's chain (last: see KeyInjector) once mistral_redirect_openai is on, and
        stays; until then no request goes through one more addon. One left by this script before mitmproxy
        reloaded it is taken out: its flows in flight would be out of reach of this Redirect's done()."""
        current = ctx.master.addons.get(KeyInjector.name)
        if current is not None and current is not self.injector:
            ctx.master.addons.remove(current)
            current = None
        if self.settings.redirect_openai and current is None:
            ctx.master.addons.add(self.injector)

    @staticmethod
    def acts_on(hook: str, kind: str, redirected: bool) -> bool:
        return redirected

    def running(self) -> None:
        self.running_ = True
        self.add_injector()
        compat.redact_web(redact)  # (mitmweb: a flow in flight holds the key)
        if self.settings.redirect_openai:
            logger.info(
                f"mistral-compat: mistral_redirect_openai: requests to {redirect.OPENAI_HOST} are sent to "
                f"{self.settings.redirect_to} with the key in {API_KEY_ENV}, never the app's own key"
            )

    def requestheaders(self, flow: http.HTTPFlow, st: FlowState) -> None:
        if not st.redirected or flow.error or not flow.live:
            return
        req = flow.request
        refused = redirect.origin_refused(st.origin, self.settings.cors.origins)
        if refused is not None:  # a web page: refused, its CORS preflight too (Cors answered it 204), dry run or not
            st.rejected = (redirect.FORBIDDEN_STATUS, refused)
            flow.response = http.Response.make(
                redirect.FORBIDDEN_STATUS, redirect.refused_body(refused), {"content-type": "application/json"}
            )
            return
        if st.kind == state.PREFLIGHT or flow.response:
            return
        feature = redirect.openai_only(req.path, req.method)
        if feature is not None:  # (a dry run too: there is nowhere to forward it)
            st.rejected = (404, f"{redirect.FEATURES.get(feature, feature)}: no Mistral counterpart")
            flow.response = http.Response.make(
                404, redirect.not_found_body(req.path, feature, req.method), {"content-type": "application/json"}
            )
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
        if (
            st.__class__ is FlowState
            and st.redirected
            and self.settings.api_key
            and not flow.response
            and flow.error is None
            and flow.live
        ):
            flow.request.headers["authorization"] = f"Bearer {self.settings.api_key}"
            self.in_flight.add(flow)
