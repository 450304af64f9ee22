"""Which flows are bound for Mistral: Matcher writes each one's FlowState; InterceptScope decides which hosts
mitmproxy decrypts at all."""

from __future__ import annotations

from mitmproxy import ctx, http
from mitmproxy.proxy import mode_specs

from mistral_compat import answers, redirect, report, settings, state
from mistral_compat.hosts import allow_patterns
from mistral_compat.state import FlowState

from . import logger
from .flows import META, user_agent_and_origin


class Matcher:
    """Decides which flows are bound for Mistral, and what each is (state.classify), once: the FlowState."""

    def __init__(self, conf: settings.Settings) -> None:
        self.settings = conf

    def requestheaders(self, flow: http.HTTPFlow) -> None:
        if flow.response or flow.error or not flow.live:
            return
        data = flow.request.data  # (what Request.host, .method, .path and .headers read, without a call each)
        # (mitmproxy makes each mode of its own class, so the class says it: no isinstance, an ABC's slow path)
        if flow.client_conn.proxy_mode.__class__ is mode_specs.ReverseMode or data.host in self.settings.hosts:
            conf = self.settings
            method = data.method.decode("utf-8", "surrogateescape").upper()
            kind, endpoint = state.classify(method, data.path.decode("utf-8", "surrogateescape"), conf.rules)
            ua, origin = user_agent_and_origin(data.headers)
            st = flow.metadata[META] = FlowState(
                (ua if len(ua) <= 80 and ua.isprintable() else report.printable(ua, 80)) if ua else "(no user-agent)",
                kind,
                endpoint,
                conf.dry_run,
                answers=answers.answers_for(kind, endpoint, ua, conf.answer_mode, conf.native_clients),
                user_agent=ua,
                origin=origin,
            )
            if conf.redirect_openai and data.host == redirect.OPENAI_HOST:
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
            logger.info(
                "mistral-compat: intercepting TLS for every host (mistral_intercept_all); "
                "only Mistral hosts are rewritten"
            )
            return
        hosts = self.settings.hosts
        self.owned = allow_patterns(hosts)
        opts.update(allow_hosts=self.owned)
        logger.info(
            f"mistral-compat: intercepting TLS only for {', '.join(hosts.patterns)}; "
            f"every other host is tunnelled untouched (mistral_intercept_all=true intercepts all)"
        )
