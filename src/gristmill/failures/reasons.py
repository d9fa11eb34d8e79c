"""Every machine-readable reason an entry can carry into a dead-letter lane, in one place.

A reason is a short snake_case token: operators filter on it (`runtime dlq replay --reason`) and
metrics count by it, so a reason never holds free text; the detail goes next to it.

Bad input (from the envelope and schema layers; no retry can fix these):
    missing_field     the entry lacks `schema_id` or `payload`, or has an odd field count
    unknown_schema    no schema is registered under the entry's `schema_id`
    schema_invalid    the schema record exists but does not build
    decode_error      the payload is not valid protobuf for its schema
    decode_depth      the payload nests deeper than the protobuf runtime allows
    oversize          the entry or its decompressed payload is over `max_entry_bytes`
    bad_encoding      an unknown `encoding`, or a compressed payload that does not decompress
    json_invalid      a JSON input's payload is not UTF-8 JSON, or not an object at the top
    json_unknown_field  a JSON input has a key its type has no field for (when rejected)
    json_type_mismatch  a JSON input's value has the wrong type or range for its field
    wrong_type        the entry's message type is not the processor's declared input type

Handler outcomes:
    handler           the handler raised `DeadLetter` with a free-text reason (kept as detail);
                      a `DeadLetter(reason=...)` whose reason is itself a snake_case token keeps
                      that token instead, so services can add their own reasons
    handler_error     a programming error, not a passing fault: the handler returned something
                      that is not a message, returned a message from a processor without
                      `output=`, or published to a stream it did not declare (`ConfigError`);
                      dead-lettered at once, since running it again fails the same way
    retries_exhausted the entry failed on its last allowed attempt
    not_retryable     the exception is in the policy's `dead_on`, or not in its `retry_on`
    crash_loop        the entry's delivery count passed `max_deliveries`: it keeps killing
                      the worker before it can fail cleanly, so it is not run again

Tasks (gristmill.tasks):
    expired           the task was not started within its `ttl`; its state is `expired`
    unknown_task      the entry names a task that the worker's app does not declare
"""

from __future__ import annotations

import re

MISSING_FIELD = "missing_field"
UNKNOWN_SCHEMA = "unknown_schema"
SCHEMA_INVALID = "schema_invalid"
DECODE_ERROR = "decode_error"
DECODE_DEPTH = "decode_depth"
OVERSIZE = "oversize"
BAD_ENCODING = "bad_encoding"
JSON_INVALID = "json_invalid"
JSON_UNKNOWN_FIELD = "json_unknown_field"
JSON_TYPE_MISMATCH = "json_type_mismatch"
WRONG_TYPE = "wrong_type"

HANDLER = "handler"
HANDLER_ERROR = "handler_error"
RETRIES_EXHAUSTED = "retries_exhausted"
NOT_RETRYABLE = "not_retryable"
CRASH_LOOP = "crash_loop"
EXPIRED = "expired"  # a task not started within its ttl (gristmill.tasks)
UNKNOWN_TASK = "unknown_task"  # a task entry names a task this worker does not declare

BAD_INPUT = frozenset(
    {MISSING_FIELD, UNKNOWN_SCHEMA, SCHEMA_INVALID, DECODE_ERROR, DECODE_DEPTH, OVERSIZE,
    BAD_ENCODING, WRONG_TYPE, JSON_INVALID, JSON_UNKNOWN_FIELD, JSON_TYPE_MISMATCH}
)  # fmt: skip
KNOWN = BAD_INPUT | {
    HANDLER, HANDLER_ERROR, RETRIES_EXHAUSTED, NOT_RETRYABLE, CRASH_LOOP, EXPIRED, UNKNOWN_TASK,
}  # fmt: skip

_TOKEN = re.compile(r"[a-z][a-z0-9_]{0,63}")


def is_reason_token(text: str) -> bool:
    """True if `text` can serve as a reason: snake_case, starts with a letter, at most 64 chars."""
    return _TOKEN.fullmatch(text) is not None
