"""The dead-letter entry: the original fields untouched, then what went wrong (pure).

    <original f1> <v1> ... <original fn> <vn>        exactly as read from the input stream
    dl:reason            a token from gristmill.failures.reasons (`decode_error`, ...)
    dl:exception         the exception's type name (`KeyError`), or empty
    dl:message           its message, at most 2,000 characters
    dl:traceback         its traceback, the last 8,000 characters (where the raise is)
    dl:attempts          how many times the handler ran (0: bad input, never run)
    dl:origin_stream     the stream the entry came from
    dl:origin_id         its entry id there
    dl:first_failure_ms  when the first run failed, and when the last one did (ms since epoch)
    dl:last_failure_ms
    dl:fields            the number of original field items (names and values): always last

Every added field starts with `dl:` and `dl:fields` says where the original fields end, so a
user field that happens to start with `dl:` is still returned untouched. Redis keeps the field
order of a stream entry, which this format relies on.
"""

from __future__ import annotations

import traceback as tb
from dataclasses import dataclass, field

PREFIX = b"dl:"
REASON = b"dl:reason"
EXCEPTION = b"dl:exception"
MESSAGE = b"dl:message"
TRACEBACK = b"dl:traceback"
ATTEMPTS = b"dl:attempts"
ORIGIN_STREAM = b"dl:origin_stream"
ORIGIN_ID = b"dl:origin_id"
FIRST_FAILURE_MS = b"dl:first_failure_ms"
LAST_FAILURE_MS = b"dl:last_failure_ms"
FIELD_COUNT = b"dl:fields"
_LEGACY_DETAIL = b"dl:detail"  # the processor's first format: reason and detail only

MAX_MESSAGE_CHARS = 2000
MAX_TRACEBACK_CHARS = 8000
_ATTEMPT = b"attempt"  # envelope.ATTEMPT; named here so a leaf module stays a leaf


@dataclass(frozen=True, slots=True)
class DeadLetterRecord:
    """One dead-letter entry, parsed: the original fields and the failure that put it there."""

    fields: list[bytes]
    reason: str
    exception: str = ""
    message: str = ""
    traceback: str = ""
    attempts: int = 0
    origin_stream: str = ""
    origin_id: str = ""
    first_failure_ms: int = 0
    last_failure_ms: int = 0
    extra: dict[str, str] = field(default_factory=dict)  # dl: fields this version does not know

    def to_fields(self) -> list[bytes]:
        """The flat field list of the dead-letter entry (what to XADD to the dead lane)."""
        added = [
            REASON, self.reason.encode(),
            EXCEPTION, self.exception.encode(),
            MESSAGE, _tail_bounded(self.message, MAX_MESSAGE_CHARS, head=True).encode(),
            TRACEBACK, _tail_bounded(self.traceback, MAX_TRACEBACK_CHARS).encode(),
            ATTEMPTS, str(self.attempts).encode(),
            ORIGIN_STREAM, self.origin_stream.encode(),
            ORIGIN_ID, self.origin_id.encode(),
            FIRST_FAILURE_MS, str(self.first_failure_ms).encode(),
            LAST_FAILURE_MS, str(self.last_failure_ms).encode(),
        ]  # fmt: skip
        for name, value in self.extra.items():
            added += [PREFIX + name.encode(), value.encode()]
        return [*self.fields, *added, FIELD_COUNT, str(len(self.fields)).encode()]

    def replay_fields(self) -> list[bytes]:
        """The fields to put back on the processor's lane: the original ones, fresh budget.

        The `attempt` field is dropped, so the replayed entry starts again at attempt 1 with the
        policy's whole retry budget: an operator replays after fixing the cause.
        """
        replay: list[bytes] = []
        for name, value in zip(self.fields[::2], self.fields[1::2], strict=True):
            if name != _ATTEMPT:
                replay += [name, value]
        return replay


def build_fields(
    original: list[bytes],
    *,
    reason: str,
    origin_stream: str,
    origin_id: str,
    attempts: int,
    last_failure_ms: int,
    first_failure_ms: int | None = None,
    exc: BaseException | None = None,
    message: str = "",
) -> list[bytes]:
    """The dead-letter entry's fields for `original`, failed for `reason` (see module doc).

    `exc`, when given, supplies the exception type, message and a bounded traceback.
    """
    return DeadLetterRecord(
        fields=list(original),
        reason=reason,
        exception=type(exc).__name__ if exc is not None else "",
        message=str(exc) if exc is not None else message,
        traceback=format_traceback(exc) if exc is not None else "",
        attempts=attempts,
        origin_stream=origin_stream,
        origin_id=origin_id,
        first_failure_ms=last_failure_ms if first_failure_ms is None else first_failure_ms,
        last_failure_ms=last_failure_ms,
    ).to_fields()


def parse_fields(fields: list[bytes]) -> DeadLetterRecord:
    """Parse a dead-letter entry; never raises, so an odd entry in a lane still lists.

    An entry without `dl:fields` (written by hand, or by an older version) is split at the
    trailing run of `dl:` fields.
    """
    original, added = split_fields(fields)
    text = {name[len(PREFIX) :].decode(errors="replace"): value.decode(errors="replace")
            for name, value in added}  # fmt: skip
    message = text.get("message", text.get("detail", ""))
    return DeadLetterRecord(
        fields=original,
        reason=text.get("reason", ""),
        exception=text.get("exception", ""),
        message=message,
        traceback=text.get("traceback", ""),
        attempts=_int(text.get("attempts")),
        origin_stream=text.get("origin_stream", ""),
        origin_id=text.get("origin_id", ""),
        first_failure_ms=_int(text.get("first_failure_ms")),
        last_failure_ms=_int(text.get("last_failure_ms")),
        extra={name: value for name, value in text.items() if name not in _KNOWN_NAMES},
    )


def split_fields(fields: list[bytes]) -> tuple[list[bytes], list[tuple[bytes, bytes]]]:
    """Split a dead-letter entry into its original fields and the added (name, value) pairs."""
    items = len(fields) - len(fields) % 2
    if items >= 2 and fields[items - 2] == FIELD_COUNT:
        count = _int(fields[items - 1].decode(errors="replace"), default=-1)
        if 0 <= count <= items - 2 and count % 2 == 0:
            rest = fields[count : items - 2]
            return list(fields[:count]), list(zip(rest[::2], rest[1::2], strict=True))
    end = items
    while end >= 2 and fields[end - 2].startswith(PREFIX):
        end -= 2
    rest = fields[end:items]
    return list(fields[:end]), list(zip(rest[::2], rest[1::2], strict=True))


def format_traceback(exc: BaseException, limit_chars: int = MAX_TRACEBACK_CHARS) -> str:
    """`exc`'s traceback as text, keeping the last `limit_chars` (the frames nearest the raise)."""
    text = "".join(tb.format_exception(exc))
    return _tail_bounded(text, limit_chars)


_KNOWN_NAMES = frozenset(
    name[len(PREFIX) :].decode()
    for name in (REASON, EXCEPTION, MESSAGE, TRACEBACK, ATTEMPTS, ORIGIN_STREAM, ORIGIN_ID,
                 FIRST_FAILURE_MS, LAST_FAILURE_MS, _LEGACY_DETAIL)
)  # fmt: skip


def _tail_bounded(text: str, limit: int, *, head: bool = False) -> str:
    if len(text) <= limit:
        return text
    marker = "...[cut]..."
    keep = max(0, limit - len(marker))
    return text[:keep] + marker if head else marker + text[len(text) - keep :]


def _int(text: str | None, default: int = 0) -> int:
    try:
        return int(text) if text is not None else default
    except ValueError:
        return default
