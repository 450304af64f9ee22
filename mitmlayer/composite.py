"""MistralCompat: the one addon object registered with mitmproxy, handing each hook to the parts."""

from __future__ import annotations

import asyncio

from mitmproxy import http

from mistral_compat.state import FlowState

from .flows import META
from .matching import Matcher

FLOW_HOOKS = ("requestheaders", "request", "responseheaders", "response", "error")


class MistralCompat:
    """The one object registered with mitmproxy, handing each hook to the parts that have it, in order
    (done in reverse: the log lines still pending are written before Redaction lets go of the handlers).

    mitmproxy visits every registered addon object on every event of every connection and flow (TLS,
    connects, disconnects, ...); ten registered parts would cost more per request than most of the work
    itself. The matcher's requestheaders comes first and writes the flow's FlowState; a flow without one
    goes to no other part, and the parts' flow hooks are handed it: hook(flow, state), and only the hooks of
    the parts that act on a flow of its kind (a part's `acts_on(hook, kind, redirected)`, if it has one: the
    Rewriter on rewritten requests, Redirect on redirected ones, ...). The choice is made once per hook and
    kind of flow, not per flow."""

    def __init__(self, matcher: Matcher, *parts) -> None:
        self.matcher = matcher
        self.parts = (matcher, *parts)
        self.hooks: dict[str, list] = {}
        self.flow_hooks = _FlowHooks(self.parts[1:])  # (hook, kind, redirected) -> part hooks

    def _each(self, hook: str) -> list:
        """Every part's lifecycle `hook` (load, configure, running, done)."""
        if hook not in self.hooks:  # looked up on first use, after any instrumentation of the parts
            self.hooks[hook] = [getattr(p, hook) for p in self.parts if callable(getattr(p, hook, None))]
        return self.hooks[hook]

    def _for(self, hook: str, st: FlowState) -> list:
        """The part flow hooks (FLOW_HOOKS) that act on this flow's kind (the matcher's own is called first)."""
        return self.flow_hooks[(hook, st.kind, st.redirected)]

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
            for hook in self.flow_hooks[("requestheaders", st.kind, st.redirected)]:  # (_for, without the call)
                hook(flow, st)

    def request(self, flow: http.HTTPFlow):
        """A part's request hook may return an awaitable (Pacing: the wait for a key's turn); then this returns a
        coroutine, which mitmproxy awaits, and the parts after it run when it is done."""
        st = flow.metadata.get(META)
        if st.__class__ is FlowState:
            hooks = self.flow_hooks[("request", st.kind, st.redirected)]  # (_for, without the call)
            for i, hook in enumerate(hooks):
                waiting = hook(flow, st)
                if waiting is not None:
                    return self._resume(waiting, hooks[i + 1 :], flow, st)
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
            for hook in self.flow_hooks[("responseheaders", st.kind, st.redirected)]:  # (_for, without the call)
                hook(flow, st)

    def response(self, flow: http.HTTPFlow) -> None:
        st = flow.metadata.get(META)
        if st.__class__ is FlowState:
            for hook in self.flow_hooks[("response", st.kind, st.redirected)]:  # (_for, without the call)
                hook(flow, st)

    def error(self, flow: http.HTTPFlow) -> None:
        st = flow.metadata.get(META)
        if st.__class__ is FlowState:
            for hook in self.flow_hooks[("error", st.kind, st.redirected)]:  # (_for, without the call)
                hook(flow, st)


class _FlowHooks(dict):
    """(hook, kind, redirected) -> the part hooks that act on such a flow, in order: made on first use (after any
    instrumentation of the parts), from each part's `acts_on(hook, kind, redirected)` if it has one; then a
    plain dict lookup per hook."""

    def __init__(self, parts: tuple) -> None:
        super().__init__()
        self.parts = parts

    def __missing__(self, key: tuple[str, str, bool]) -> list:
        hook, kind, redirected = key
        hooks = self[key] = [
            getattr(p, hook)
            for p in self.parts
            if callable(getattr(p, hook, None)) and (not hasattr(p, "acts_on") or p.acts_on(hook, kind, redirected))
        ]
        return hooks
