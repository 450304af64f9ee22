"""CORS: preflights answered by the proxy, CORS headers (mistral_compat/cors.py) on every answer."""

from __future__ import annotations

from mitmproxy import http

from mistral_compat import settings, state
from mistral_compat.state import FlowState

from .flows import header


class Cors:
    """Answers preflights itself and puts CORS headers (mistral_compat/cors.py) on every answer to a matched
    request."""

    def __init__(self, conf: settings.Settings) -> None:
        self.settings = conf

    @staticmethod
    def acts_on(hook: str, kind: str, redirected: bool) -> bool:
        return hook != "requestheaders" or kind == state.PREFLIGHT

    def requestheaders(self, flow: http.HTTPFlow, st: FlowState) -> None:
        if st.kind == state.PREFLIGHT and not flow.response and not flow.error and flow.live:
            flow.response = http.Response.make(204, b"", {"server": "mistral-compat"})

    def responseheaders(self, flow: http.HTTPFlow, st: FlowState) -> None:
        resp = flow.response
        if flow.error or not flow.live or resp is None:
            return
        preflight = None
        if st.kind == state.PREFLIGHT:
            asked = flow.request.headers
            preflight = (
                header(asked, b"access-control-request-method"),
                header(asked, b"access-control-request-headers"),
            )
        headers = resp.data.headers  # (what Response.headers reads, without the call)
        headers.fields = self.settings.cors.answer_fields(headers.fields, st.origin, preflight)
