"""The differences between mitmproxy 11 and 12 that the addon meets, in one place: content views.

mitmproxy 12 replaced the content view API (contentviews.View, called with the data and keyword arguments,
returning a title and formatted lines) by contentviews.Contentview (prettify and render_priority taking a
Metadata object with .flow and .http_message), and has no removal (views are replaced by name).
"""

from __future__ import annotations

from typing import Callable

from mitmproxy import contentviews

# text(data, flow, http_message) -> the view's text, or None when the view has nothing to show for it
ViewText = Callable[..., "str | None"]  # (data, flow, http_message, probe=False)

NAME = "mistral-compat"
NOT_MINE = "not a request changed by mistral-compat"

if hasattr(contentviews, "Contentview"):  # mitmproxy 12

    class TextView(contentviews.Contentview):  # type: ignore[name-defined, unused-ignore]
        name = NAME

        def __init__(self, text: ViewText) -> None:
            self.text = text

        def prettify(self, data: bytes, metadata) -> str:
            text = self.text(data, metadata.flow, metadata.http_message)
            if text is None:
                raise ValueError(NOT_MINE)
            return text

        def render_priority(self, data: bytes, metadata) -> float:
            return 2.0 if self.text(b"", metadata.flow, metadata.http_message, True) is not None else -1

    def remove_view(view) -> None:
        pass  # mitmproxy 12 has no removal; adding a view again replaces it by name
else:  # mitmproxy 11

    class TextView(contentviews.View):  # type: ignore[no-redef, name-defined, unused-ignore]
        name = NAME

        def __init__(self, text: ViewText) -> None:
            self.text = text

        def __call__(self, data, *, flow=None, http_message=None, **_):
            text = self.text(data, flow, http_message)
            if text is None:
                return NAME, contentviews.format_text(NOT_MINE.encode())
            return f"{NAME}: before / after", contentviews.format_text(text)

        def render_priority(self, data, *, flow=None, http_message=None, **_) -> float:
            return 2.0 if self.text(b"", flow, http_message, True) is not None else -1

    def remove_view(view) -> None:
        try:
            contentviews.remove(view)
        except (KeyError, ValueError):  # not registered
            pass


def add_view(view) -> None:
    contentviews.add(view)


def redact_web(redact: Callable[[str], str]) -> None:
    """Pass every header value mitmweb sends to its page (the flow list, a flow's details) through redact. Only
    when mitmweb is running; mitmweb's flow_to_json is looked up by name where it is used (11 and 12)."""
    import sys

    app = sys.modules.get("mitmproxy.tools.web.app")
    original = getattr(app, "flow_to_json", None)
    if original is None or getattr(original, "mistral_compat", False):
        return

    def flow_to_json(flow) -> dict:
        data = original(flow)
        for part in ("request", "response"):
            message = data.get(part)
            if isinstance(message, dict) and isinstance(message.get("headers"), (list, tuple)):
                message["headers"] = [[k, redact(v) if isinstance(v, str) else v] for k, v in message["headers"]]
        return data

    flow_to_json.mistral_compat = True  # type: ignore[attr-defined]
    app.flow_to_json = flow_to_json  # type: ignore[union-attr]
