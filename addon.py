"""mistral-compat: make OpenAI-compatible requests acceptable to Mistral's API.

    mitmdump -s addon.py                                   # as an HTTP(S) proxy
    mitmdump -s addon.py --mode reverse:https://api.mistral.ai --set connection_strategy=lazy

This file is the thin mitmproxy layer: options, hooks, and applying what the pure core
(the mistral_compat package beside it) decides.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence

from mitmproxy import ctx, exceptions, http
from mitmproxy.proxy import mode_specs

from mistral_compat import changes as changes_mod
from mistral_compat.hosts import HostSet
from mistral_compat.rewrite import rewrite
from mistral_compat.rules import builtin

logger = logging.getLogger(__name__)

META = "mistral_compat"  # flow.metadata key: what the addon did to this flow


def error_response(status: int, message: str) -> http.Response:
    """An answer from the proxy itself, in Mistral's error shape."""
    body = {"object": "error", "message": f"mistral-compat: {message}",
            "type": "invalid_request_error", "param": None, "code": None}
    return http.Response.make(status, json.dumps(body), {"content-type": "application/json"})


def is_matched(flow: http.HTTPFlow, hosts: HostSet) -> bool:
    """Bound for Mistral: a Mistral host, a configured host, or anything on a reverse-proxy listener."""
    return flow.request.host in hosts or isinstance(flow.client_conn.proxy_mode, mode_specs.ReverseMode)


class MistralCompat:
    """Rewrites request bodies on matched hosts to what each Mistral endpoint accepts."""

    def __init__(self) -> None:
        self.hosts = HostSet()
        self.rules = builtin()

    def load(self, loader) -> None:
        loader.add_option(
            name="mistral_hosts",
            typespec=Sequence[str],
            default=[],
            help="Extra hosts to treat as Mistral, besides api.mistral.ai and codestral.mistral.ai "
                 "(repeat the option for several; '*.example.com' matches every subdomain). "
                 "In reverse mode every request is treated as bound for Mistral.",
        )

    def configure(self, updated) -> None:
        if "mistral_hosts" in updated:
            try:
                self.hosts = HostSet.parse(ctx.options.mistral_hosts)
            except ValueError as e:
                raise exceptions.OptionsError(f"mistral_hosts: {e}") from e

    def running(self) -> None:
        unknown = sorted(k for k in getattr(ctx.options, "deferred", {}) if k.startswith("mistral_"))
        for name in unknown:
            logger.warning(f"Unknown option {name!r} ignored: mistral-compat has no such option "
                           f"(its options are listed in the README).")

    def request(self, flow: http.HTTPFlow) -> None:
        if flow.response or flow.error or not flow.live:
            return
        if not is_matched(flow, self.hosts):
            return
        flow.metadata[META] = info = {"matched": True}
        req = flow.request
        if req.method != "POST":
            return
        endpoint = self.rules.endpoint(req.path)
        if endpoint is None:
            return
        info["endpoint"] = endpoint
        if req.raw_content is None:
            logger.warning(f"{endpoint}: the request body was streamed (stream_large_bodies?) "
                           f"and could not be rewritten")
            return
        try:
            body = req.get_content(strict=True)
        except ValueError:
            encoding = req.headers.get("content-encoding", "")
            self._reject(flow, endpoint, f"the body cannot be decoded as Content-Encoding {encoding!r}")
            return
        result = rewrite(self.rules, endpoint, body or b"")
        if result.error:
            self._reject(flow, endpoint, result.error)
            return
        if result.body is None:
            return
        info["changes"] = result.changes
        req.content = result.body
        logger.info(f"mistral-compat {endpoint} [{_client(req)}]: {changes_mod.summarize(result.changes)}")

    def responseheaders(self, flow: http.HTTPFlow) -> None:
        if flow.error or not flow.live or META not in flow.metadata or not flow.response:
            return
        if flow.response.headers.get("content-type", "").startswith("text/event-stream"):
            flow.response.stream = True

    def _reject(self, flow: http.HTTPFlow, endpoint: str, message: str) -> None:
        flow.response = error_response(400, message)
        flow.metadata[META]["rejected"] = message
        logger.warning(f"mistral-compat {endpoint} [{_client(flow.request)}]: answered 400: {message}")


def _client(req: http.Request) -> str:
    ua = req.headers.get("user-agent", "")
    return ua[:80] if ua else "no user-agent"


addons = [MistralCompat()]
