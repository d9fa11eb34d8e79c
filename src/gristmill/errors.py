"""Every exception gristmill raises.

GristmillError
├── ConfigError(ValueError)        bad settings or declarations; raised at start, names the fix
├── ServerError(RuntimeError)      the embedded server would not start, or the server refused us
│   ├── ReplicationTimeout         fewer replicas than asked acknowledged a write (WAIT)
│   └── ReplyError                     the server answered a command with an error (has `code`)
├── SchemaError                    a schema cannot be built, stored or accepted
│   ├── SchemaNotFound(LookupError)    no record under that schema id or subject
│   ├── InvalidSchema(ValueError)      a descriptor set that does not build, or is over a limit
│   └── IncompatibleSchema             a new version breaks the subject's compatibility mode
├── DecodeError(ValueError)        an entry's fields or payload do not parse (has a `reason`)
├── ScriptError                    a Lua script returned an error code
│   └── CommitRefused                  the server refused a commit (it wrote nothing); stop
└── TaskFailed                     an awaited task ended in error, cancelled or expired
HandlerSignal(Exception)           raised on purpose by a handler to steer an entry; no traceback
├── Retry(delay=...)               to the processor's retry lane after `delay` seconds
└── DeadLetter(reason=...)         to the dead-letter lane, with no further attempts

Each class that can end in a dead-letter lane carries a machine-readable `reason`.
"""

from __future__ import annotations


class GristmillError(Exception):
    """Raised for any gristmill failure; the base to catch them all."""

    reason = "error"


class ConfigError(GristmillError, ValueError):
    """Raised at start when a setting or a declaration is wrong; the message names the fix,
    or `fix` does (the `fix:` line `runtime serve` prints)."""

    reason = "config"

    def __init__(self, message: str, fix: str | None = None) -> None:
        super().__init__(message)
        self.fix = fix


class ServerError(GristmillError, RuntimeError):
    """Raised when the embedded server cannot start or the server refuses a command."""

    reason = "server"


class ReplyError(ServerError):
    """Raised when the server answers a command with an error reply (`-ERR ...`).

    `code` is the reply's first word: NOGROUP, NOSCRIPT, BUSYGROUP, WRONGTYPE, NOPERM, OOM...
    """

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.code = message.split(" ", 1)[0]


class SchemaError(GristmillError):
    """Raised when a schema cannot be built, stored, found or accepted."""

    reason = "schema_invalid"


class SchemaNotFound(SchemaError, LookupError):
    """Raised when no record exists under a schema id or subject."""

    reason = "unknown_schema"


class InvalidSchema(SchemaError, ValueError):
    """Raised when a descriptor set does not build or passes a size or count limit."""

    reason = "schema_invalid"


class IncompatibleSchema(SchemaError):
    """Raised when a new version breaks its subject's compatibility mode."""

    reason = "schema_incompatible"


class DecodeError(GristmillError, ValueError):
    """Raised when an entry's fields or payload do not parse.

    `reason` is one of: `missing_field`, `unknown_schema`, `schema_invalid`, `decode_error`,
    `decode_depth`, `oversize`, `bad_encoding`, `wrong_type`, `json_invalid`,
    `json_unknown_field`, `json_type_mismatch`.
    """

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


class ScriptError(GristmillError):
    """Raised when a Lua script returns an error code."""

    reason = "script"


class ReplicationTimeout(ServerError):
    """Raised when fewer replicas than asked acknowledged a write in time (WAIT).

    The write is on the primary and may still reach the replicas; publishing again is at
    least once.
    """

    reason = "replication_timeout"


class CommitRefused(ScriptError):
    """Raised when the server refuses a batch's commit; it wrote nothing, the processor stops.

    The commit script checks ACL, key types and memory before its first write, so nothing of
    a refused commit is in Redis; retrying would only be refused again.
    """

    reason = "commit_refused"


class TaskFailed(GristmillError):
    """Raised by `handle.result()` when the task ended in `error`, `cancelled` or `expired`."""

    def __init__(self, state: str, task_id: str, error: str = "") -> None:
        detail = f": {error}" if error else ""
        super().__init__(f"task {task_id} ended {state}{detail}")
        self.state = state
        self.task_id = task_id
        self.error = error


class HandlerSignal(Exception):
    """Raised on purpose by a handler to steer its entry; logged at INFO without a traceback."""


class Retry(HandlerSignal):
    """Raised by a handler to run the entry again after `delay` seconds (None: the policy's)."""

    def __init__(self, delay: float | None = None) -> None:
        super().__init__(f"retry requested (delay={delay})")
        self.delay = delay


class DeadLetter(HandlerSignal):
    """Raised by a handler to send its entry to the dead-letter lane with no further attempts."""

    def __init__(self, reason: str = "handler") -> None:
        super().__init__(reason)
        self.reason = reason
