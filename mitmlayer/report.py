"""Telling people what was changed, and keeping secrets out of what is told: RequestLog (the batched log
lines), Report (log lines, flow comments and marker, the shutdown summary), the before/after content view,
and Redaction (API keys out of every log line and flow line mitmproxy prints)."""

from __future__ import annotations

import asyncio
import logging
from typing import Callable

from mitmproxy import ctx, http

from mistral_compat import report, settings
from mistral_compat.redact import redact_text
from mistral_compat.state import FlowState

from . import compat, logger
from .flows import MARKER, META, keeps_flows

API_KEY_ENV = "MISTRAL_API_KEY"


class RequestLog:
    """The per-request log lines, written in batches: one log record per FLUSH_DELAY at most for each run of
    lines at the same level (each line still one request). A log record costs far more than its text:
    mitmproxy formats it for each of its handlers and dispatches a legacy add_log event to every addon; one
    record per request alone would cost about 5% of a proxied request. A line can also be made when the
    batch is written (`later`), with the summary counts that go with it: work done for many requests in one
    loop costs a fraction of the same work done in each request's hook, between which mitmproxy's own work
    empties the CPU caches."""

    FLUSH_DELAY = 0.2  # seconds a line may wait for others

    def __init__(self) -> None:
        # (level, line), or (level, make, args): make(*args) is called when the batch is written, in this order,
        # and returns the line (None: no line)
        self.pending: list[tuple] = []
        self.timer: asyncio.TimerHandle | None = None

    def add(self, level: int, line: str) -> None:
        self.pending.append((level, line))
        if self.timer is None:
            self._arm()

    def later(self, level: int, make: Callable[..., str | None], args: tuple) -> None:
        """make(*args) when the batch is written, in its turn among the lines: the line it returns (None: none).
        make may count what it writes too; what it raises costs only its own line."""
        self.pending.append((level, make, args))
        if self.timer is None:
            self._arm()

    def _arm(self) -> None:
        try:
            self.timer = asyncio.get_running_loop().call_later(self.FLUSH_DELAY, self.flush)
        except RuntimeError:  # no event loop (not running under mitmproxy): write it now
            self.flush()

    def flush(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        pending, self.pending = self.pending, []
        lines: list[tuple[int, str]] = []
        for entry in pending:
            if len(entry) == 2:
                lines.append(entry)
                continue
            level, make, args = entry
            try:
                line = make(*args)
            except Exception as e:  # a safety net: one line lost, never the batch (this runs in a timer)
                level = logging.WARNING
                line = f"mistral-compat: a log line could not be made ({type(e).__name__}: {report.printable(str(e))})"
            if line is not None:
                lines.append((level, line))
        start = 0
        for i in range(1, len(lines) + 1):  # one record per run of lines at the same level
            if i == len(lines) or lines[i][0] != lines[start][0]:
                logger.log(lines[start][0], "\n".join(line for _, line in lines[start:i]))
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
        compat.add_view(self.view)
        self.comments = keeps_flows()
        self.summary.pacing = self.settings.rate is not None

    def done(self) -> None:
        self.log.flush()
        compat.remove_view(self.view)
        table = self.summary.table()
        if table:
            logger.info(table)

    def request(self, flow: http.HTTPFlow, st: FlowState) -> None:
        if not flow.live and not st.gone:  # (a request whose client left while it waited is killed)
            return
        client = st.client
        endpoint = st.endpoint
        # Every summary count is made with the next batch of lines (RequestLog.later), in the order the hooks
        # ran, so the summary is the same as if each was counted at once; so is a changed request's line.
        if st.changes and endpoint is not None and not st.rejected and not st.gone:  # a changed request
            self.log.later(
                logging.INFO, self._changed, (endpoint, client, st.changes, st.dry_run, st.wait_note, st.waited)
            )
            if self.comments:
                flow.comment = report.comment(st.changes, st.dry_run, st.wait_note)
            flow.marked = MARKER
            if self.debug and st.original is not None:
                self.log.add(
                    logging.DEBUG,
                    report.before_after(st.original, None if st.dry_run else flow.request.content, st.changes),
                )
            return
        self.log.later(logging.INFO, self._matched, (client, st.waited))
        if endpoint is None or st.gone:
            if st.wait_note or st.gone or st.rejected:  # a paced request to another path (GET /v1/models)
                self._paced(flow, st, endpoint or flow.request.path.partition("?")[0])
            return
        if st.rejected:
            self.log.later(logging.WARNING, self._rejected, (endpoint, client, st.rejected, st.dry_run, True))
            return
        self._paced(flow, st, endpoint, rejected_logged=True)

    # -- made when the batch of lines is written (RequestLog.later), in the order the hooks ran

    def _matched(self, client: str, waited: float) -> None:
        self.summary.matched(client)
        if waited:
            self.summary.waited(client, waited)

    def _changed(self, endpoint: str, client: str, changes: list, dry_run: bool, wait_note: str, waited: float) -> str:
        """A changed request, counted in the summary: its log line."""
        self._matched(client, waited)
        self.summary.changed(client, changes)
        line = report.log_line(endpoint, client, changes, dry_run)
        return f"{line}; {wait_note}" if wait_note else line

    def _rejected(self, endpoint: str, client: str, rejected: tuple[int, str], dry_run: bool, counted: bool) -> str:
        """A request the proxy answered itself (counted: as refused; a 429 in any case): its log line."""
        if counted:
            self.summary.rejected(client)
        if rejected[0] == 429:
            self.summary.limited(client)
        return report.rejected_line(endpoint, client, *rejected, dry_run)

    def _answered(self, endpoint: str, client: str, notes: list[str], dry_run: bool) -> str:
        """A translated answer, counted in the summary: its log line."""
        self.summary.answered(client, notes)
        return report.answer_line(endpoint, client, notes, dry_run)

    def _paced(self, flow: http.HTTPFlow, st: FlowState, endpoint: str, rejected_logged: bool = False) -> None:
        """The log line and comment of a request that waited, left while waiting, or was refused for a full
        queue, when it has no other line."""
        if st.gone:
            self.log.add(
                logging.INFO,
                report.wait_line(
                    endpoint, st.client, (st.wait_note or "waited") + "; the client left before its turn: not sent"
                ),
            )
        elif st.rejected and not rejected_logged:
            self.log.later(logging.WARNING, self._rejected, (endpoint, st.client, st.rejected, st.dry_run, False))
        elif st.wait_note and not st.rejected:
            self.log.add(logging.INFO, report.wait_line(endpoint, st.client, st.wait_note))
            if self.comments:
                flow.comment = f"mistral-compat: {st.wait_note}"

    def response(self, flow: http.HTTPFlow, st: FlowState) -> None:
        if st.limited:
            self.log.later(logging.INFO, self.summary.limited, (st.client,))
        notes = st.answer_notes
        if not notes or not flow.live:
            return
        endpoint = st.endpoint or flow.request.path.partition("?")[0]
        self.log.later(logging.INFO, self._answered, (endpoint, st.client, notes, st.dry_run))
        if self.comments:
            note = report.answer_comment(notes, st.dry_run)
            flow.comment = f"{flow.comment}\n\n{note}" if flow.comment else note
        flow.marked = MARKER
        if self.debug and st.answer_original is not None and flow.response is not None:
            self.log.add(
                logging.DEBUG, report.answer_before_after(st.answer_original, flow.response.content or b"", notes)
            )


def _view_text(data: bytes, flow, http_message, probe: bool = False) -> str | None:
    """The mistral-compat content view of a live or saved flow's request or answer; None: nothing to show.
    probe: only whether there is something to show ("" if so), without building it (render_priority)."""
    st = FlowState.from_saved(getattr(flow, "metadata", {}).get(META)) if flow is not None else None
    if st is None:
        return None
    if http_message is getattr(flow, "response", None) and http_message is not None:
        if st.answer_original is None:
            return None
        if probe:
            return ""
        return report.answer_before_after(st.answer_original, data, st.answer_notes)
    if st.original is None or http_message is not getattr(flow, "request", None):
        return None
    if probe:
        return ""
    return report.before_after(st.original, None if st.dry_run else data, st.changes)


class BeforeAfterView(compat.TextView):
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
        # (print() writes the line's "\n" on its own: nothing to redact there, and no call to find that out)
        return self._inner.write(redact(text) if len(text) > 2 else text)

    def __getattr__(self, name):
        value = getattr(self._inner, name)
        if callable(value):  # (flush, isatty, ...: asked for on every line; kept, so asked here once)
            setattr(self, name, value)
        return value


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
