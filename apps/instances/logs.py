"""Reading an attempt's log as an operator does: streamed whole for a download, searched
line by line, its last lines, its error lines.

A log is stored as chunks (AttemptLogChunk) that may cut a line anywhere; every read
here goes through `log_lines`, which joins the pieces of a line across chunks and reads
the chunks a few at a time, so a large log is never held in memory at once.
"""

import re
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field

from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

from apps.core.errors import ValidationFailed

from .models import Attempt, AttemptLogChunk

# Lines an operator looks for first when something failed.
ERROR_LINE = re.compile(r"error|exception|traceback|fatal", re.IGNORECASE)
SEARCH_MAX_CHARS = 200  # the longest ?q= accepted
SEARCH_MAX_MATCHES = 1000  # matching lines listed at most; the count goes on
TAIL_DEFAULT = 200
TAIL_MAX = 10_000
EXCERPT_LINES = 5  # error lines a failure's diagnosis quotes
# The diagnosis reads at most this much of the end of a log for its excerpt.
EXCERPT_SCAN_CHARS = 256 * 1024


@dataclass
class LogLine:
    number: int  # 1-based, within the attempt's whole log
    text: str
    # (start, end) of each match of the search in `text`
    spans: list[tuple[int, int]] = field(default_factory=list)

    @property
    def is_error(self) -> bool:
        return bool(ERROR_LINE.search(self.text))

    def as_html(self) -> SafeString:
        """The line escaped, each match of the search in <mark>."""
        pieces, at = [], 0
        for start, end in self.spans:
            pieces.append(escape(self.text[at:start]))
            pieces.append(f"<mark>{escape(self.text[start:end])}</mark>")
            at = end
        pieces.append(escape(self.text[at:]))
        return mark_safe("".join(pieces))  # noqa: S308 - every piece is escaped above

    def as_dict(self) -> dict:
        return {"number": self.number, "text": self.text, "error": self.is_error}


@dataclass
class LogSearch:
    query: str
    lines: list[LogLine]
    matches: int  # matching lines in the whole log (more than listed when truncated)
    scanned: int  # lines read

    @property
    def truncated(self) -> bool:
        return self.matches > len(self.lines)


def tail_lines(raw: str | int | None) -> int:
    """?tail=N checked: a whole number from 1 to TAIL_MAX (TAIL_DEFAULT when not given)."""
    if raw in (None, ""):
        return TAIL_DEFAULT
    if not str(raw).isdigit() or not 1 <= int(raw) <= TAIL_MAX:
        raise ValidationFailed(
            "invalid tail", [{"field": "tail", "message": f"a whole number from 1 to {TAIL_MAX}"}]
        )
    return int(raw)


def search_query(raw: str | None) -> str:
    """?q= checked: at most SEARCH_MAX_CHARS characters, surrounding blanks dropped."""
    query = (raw or "").strip()
    if len(query) > SEARCH_MAX_CHARS:
        raise ValidationFailed(
            "invalid q", [{"field": "q", "message": f"at most {SEARCH_MAX_CHARS} characters"}]
        )
    return query


def log_chunks(attempt: Attempt, *, start: int = 0) -> Iterator[str]:
    """The attempt's log text from the chunk holding character `start`, chunk by chunk."""
    chunks = AttemptLogChunk.objects.filter(attempt=attempt).order_by("offset")
    if start:
        first = (
            chunks.filter(offset__lte=start).order_by("-offset").values_list("offset", flat=True)
        ).first()
        chunks = chunks.filter(offset__gte=first or 0)
    yield from chunks.values_list("text", flat=True).iterator(chunk_size=20)


def log_lines(attempt: Attempt, *, start: int = 0) -> Iterator[LogLine]:
    """The attempt's log line by line (without their newlines), numbered from 1 (or, from
    `start`, counted from the first whole line read there)."""
    number, rest = 0, ""
    skip_partial = start > 0
    for text in log_chunks(attempt, start=start):
        rest += text
        *whole, rest = rest.split("\n")
        for line in whole:
            if skip_partial:
                skip_partial = False  # the tail of a line that began before `start`
                continue
            number += 1
            yield LogLine(number=number, text=line)
    if rest and not skip_partial:
        yield LogLine(number=number + 1, text=rest)


def log_search(*, attempt: Attempt, query: str) -> LogSearch:
    """Lines of the attempt's log holding `query` (case-insensitive, plain text)."""
    pattern = re.compile(re.escape(query), re.IGNORECASE)
    found: list[LogLine] = []
    matches = scanned = 0
    for line in log_lines(attempt):
        scanned += 1
        spans = [m.span() for m in pattern.finditer(line.text)]
        if spans:
            matches += 1
            if len(found) < SEARCH_MAX_MATCHES:
                line.spans = spans
                found.append(line)
    return LogSearch(query=query, lines=found, matches=matches, scanned=scanned)


def log_tail(*, attempt: Attempt, lines: int = TAIL_DEFAULT) -> list[LogLine]:
    """The last `lines` lines of the attempt's log, with their numbers."""
    return list(deque(log_lines(attempt), maxlen=lines))


def error_excerpt(*, attempt: Attempt, lines: int = EXCERPT_LINES) -> list[LogLine]:
    """The last `lines` error lines near the end of the attempt's log (numbers counted
    from where the read began when the log is longer than EXCERPT_SCAN_CHARS)."""
    start = max(attempt.log_size - EXCERPT_SCAN_CHARS, 0)
    return list(deque((ln for ln in log_lines(attempt, start=start) if ln.is_error), lines))


def log_html(text: str) -> SafeString:
    """Log text for a <pre>: escaped, each error line wrapped in <span class="log-error">."""
    out = []
    for line in text.splitlines(keepends=True):
        body = escape(line)
        out.append(f'<span class="log-error">{body}</span>' if ERROR_LINE.search(line) else body)
    return mark_safe("".join(out))  # noqa: S308 - every line is escaped above
