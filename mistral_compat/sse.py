"""Server-sent events: bytes split anywhere by the network -> whole events, each with its bytes as received.

Used by every stream the addon touches (chat answers, the Responses bridge). An event is the lines up to and
including a blank line; `\\n` and `\\r\\n` line ends are both read, comments (":...") and other fields are
kept in the event's bytes, and `data` lines are joined as the SSE spec says. Pure: no I/O, no mitmproxy.
"""

from __future__ import annotations

from typing import NamedTuple


class Event(NamedTuple):
    raw: bytes  # the event's bytes exactly as received, its blank line included
    data: str | None  # its data lines joined with "\n"; None when it has none (a comment, a lone id)


def _data_value(line: bytes) -> bytes | None:
    """The value of a `data` line (one leading space removed), or None for any other line."""
    if not line.startswith(b"data"):
        return None
    rest = line[4:]
    if not rest:
        return b""
    if rest[:1] != b":":
        return None
    return rest[2:] if rest[1:2] == b" " else rest[1:]


def parse_event(raw: bytes) -> Event:
    """One event's bytes (lines and their blank line) -> Event."""
    data = None
    for line in raw.split(b"\n"):
        value = _data_value(line[:-1] if line.endswith(b"\r") else line)
        if value is not None:
            text = value.decode("utf-8", "replace")
            data = text if data is None else data + "\n" + text
    return Event(raw, data)


# Bytes of an unfinished event held at most; past that they pass on as they came. Far above any real event
# (a tool call writing a whole file as its arguments is a few MB), so it only bounds a stream without line ends.
MAX_HELD = 32 << 20


class Reader:
    """feed(bytes) -> the events completed by them; close() -> the rest (an event the stream did not end
    with a blank line), so that every byte fed comes out again in exactly one event, in order.

    An event that grows past MAX_HELD bytes before its end (a stream without line ends, say) is let go
    as it is, as an Event without data, so that nothing is held back for long."""

    def __init__(self) -> None:
        self._lines: list[bytes] = []  # the complete lines of the event being read, with their line ends
        self._partial: list[bytes] = []  # the pieces of a line still incomplete (no quadratic joins)
        self._held = 0  # bytes in both

    def feed(self, data: bytes) -> list[Event]:
        events = self._feed(data)
        self._held += len(data) - sum(len(e.raw) for e in events)
        if self._held > MAX_HELD:
            events.append(Event(self.drain(), None))
        return events

    def drain(self) -> bytes:
        """The bytes held (an unfinished event), let go."""
        rest = b"".join(self._lines) + b"".join(self._partial)
        self._lines.clear()
        self._partial.clear()
        self._held = 0
        return rest

    def _feed(self, data: bytes) -> list[Event]:
        if b"\n" not in data:
            if data:
                self._partial.append(data)
            return []
        if self._partial:
            self._partial.append(data)
            data, self._partial = b"".join(self._partial), []
        events: list[Event] = []
        start = 0
        lines = self._lines
        while True:
            end = data.find(b"\n", start)
            if end < 0:
                break
            line = data[start : end + 1]
            start = end + 1
            lines.append(line)
            if line == b"\n" or line == b"\r\n":
                events.append(parse_event(b"".join(lines)))
                lines.clear()
        if start < len(data):
            self._partial.append(data[start:])
        return events

    def close(self) -> list[Event]:
        rest = self.drain()
        return [parse_event(rest)] if rest else []


def replace_data(event: Event, data: bytes) -> bytes:
    """The event's bytes with its data lines replaced by one `data: ` line holding `data` (which has no
    newline), its other lines and its line ends kept."""
    eol = b"\r\n" if event.raw.endswith(b"\r\n") else b"\n"
    out: list[bytes] = []
    done = False
    for line in event.raw.split(b"\n"):
        bare = line[:-1] if line.endswith(b"\r") else line
        if _data_value(bare) is not None:
            if not done:
                out.append(b"data: " + data + eol)
                done = True
        elif bare:
            out.append(bare + eol)
    if not done:
        out.append(b"data: " + data + eol)
    out.append(eol)
    return b"".join(out)
