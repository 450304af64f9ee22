"""Pacing: the wait for a key's turn (mistral_rate_limit), and the hold after Mistral answers a key 429."""

from __future__ import annotations

import time

from mitmproxy import http

from mistral_compat import errors, pacing, settings
from mistral_compat.state import FlowState

from . import logger
from .flows import header


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
            logger.info(
                f"mistral-compat: pacing requests to Mistral to {rate} per API key (mistral_rate_limit); "
                f"a request that would wait more than {self.pacer.max_wait:.0f} s is answered 429"
            )

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
        conn, key = flow.client_conn, st.key or ""
        try:
            wait = await self.pacer.acquire(key, gone=lambda: not conn.connected or flow.error is not None)
        except pacing.QueueFull as e:  # (a dry run too: pacing is not a change to the body)
            message = self._full_message(e)
            st.rejected = (429, message)
            flow.response = http.Response.make(
                429,
                errors.proxy_error(429, message),
                {"content-type": "application/json", "retry-after": e.retry_after_header()},
            )
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
            return (
                f"Mistral answered 429 (rate limited) for this API key and asked to wait; the proxy holds the "
                f"key's requests for {e.retry_after:.0f} s more, longer than it lets a request wait "
                f"({self.pacer.max_wait:.0f} s): retry after that"
            )
        return (
            f"the proxy's queue for this API key was full: {e.queued} request(s) were already waiting for "
            f"their turn under mistral_rate_limit {self.settings.rate}, so this one would have waited "
            f"{e.retry_after:.0f} s, more than {self.pacer.max_wait:.0f} s: retry after that"
        )

    def responseheaders(self, flow: http.HTTPFlow, st: FlowState) -> None:
        resp = flow.response
        if resp is None or resp.data.status_code != 429 or not flow.live or st.rejected:
            return  # (not Mistral's 429: the proxy's own answers are marked rejected)
        if st.key is None:
            st.key = pacing.key_from_headers(flow.request.headers)
        hold = pacing.parse_retry_after(header(resp.headers, b"retry-after", None), time.time())
        self.pacer.hold(st.key, hold)
        st.limited = True
