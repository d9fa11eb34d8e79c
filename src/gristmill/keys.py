"""Every Redis key name gristmill uses, and the cluster hash slot it lands in.

User streams keep the names users gave them. Lanes derived from a stream (retry, dead-letter,
delayed) share the stream's hash slot, so a script can touch the stream and its lanes at once in
Redis Cluster: a stream name with a `{tag}` keeps its tag, any other name is wrapped whole.
Global keys (schemas, leases) take the configured prefix, `gm:` by default.

No other module builds a key name.
"""

from __future__ import annotations

import re

DEFAULT_PREFIX = "gm:"
EXECUTION_CLASS = re.compile(r"[a-z0-9_-]{1,32}")  # the name of an execution class (class_lane)


def has_hash_tag(name: str) -> bool:
    """True if `name` has a non-empty `{tag}`, which Redis Cluster hashes instead of the name."""
    start = name.find("{")
    if start < 0:
        return False
    end = name.find("}", start + 1)
    return end > start + 1


def slot_prefix(stream: str) -> str:
    """`{orders}` for `orders`; a name with a `{tag}` keeps its slot (`{eu}.orders` stays)."""
    return stream if has_hash_tag(stream) else f"{{{stream}}}"


# -- lanes derived from an input stream (same hash slot as the stream) -------------------------


def retry_lane(stream: str, group: str) -> str:
    """The stream where `group`'s retries of entries from `stream` arrive when due."""
    return f"{slot_prefix(stream)}:retry:{group}"


def dead_lane(stream: str, group: str) -> str:
    """The dead-letter stream of `group` for entries that came from `stream`."""
    return f"{slot_prefix(stream)}:dead:{group}"


def dead_lane_pattern() -> str:
    """A SCAN MATCH pattern that every dead-letter lane matches (and a few other keys may)."""
    return "*:dead:*"


def split_dead_lane(key: str) -> tuple[str, str] | None:
    """The (stream, group) whose `dead_lane` is `key`, or None if `key` is not one."""
    tag_end = key.find("}", key.find("{") + 1) if "{" in key else -1
    marker = key.find(":dead:", max(tag_end, 0))
    if tag_end < 0 or marker < 0 or not key[marker + 6 :]:
        return None
    prefix, group = key[:marker], key[marker + 6 :]
    unwrapped = prefix[1:-1] if prefix.startswith("{") and prefix.endswith("}") else None
    stream = unwrapped if unwrapped and slot_prefix(unwrapped) == prefix else prefix
    return (stream, group) if dead_lane(stream, group) == key else None


def delayed_store(stream: str) -> str:
    """The sorted set of entries (or of time buckets) waiting to be swept into `stream`."""
    return f"{slot_prefix(stream)}:delayed"


def delayed_bucket(stream: str, release_ms: int) -> str:
    """The compact container of the entries released at `release_ms` (their bucket's end)."""
    return f"{slot_prefix(stream)}:delayed:{release_ms}"


def delayed_sequence(stream: str) -> str:
    """A counter that makes each delayed entry of `stream` unique in its store."""
    return f"{slot_prefix(stream)}:delayed:seq"


def delayed_fence(stream: str) -> str:
    """String: the highest sweeper lease epoch that swept `stream`'s store (Cluster fencing)."""
    return f"{slot_prefix(stream)}:delayed:fence"


def delayed_schema_refs(stream: str) -> str:
    """Hash: schema id -> the small number compact entries of `stream`'s store use for it."""
    return f"{slot_prefix(stream)}:delayed:schema-refs"


def delayed_schema_ids(stream: str) -> str:
    """Hash: the store's number for a schema id -> that schema id (delayed_schema_refs' inverse)."""
    return f"{slot_prefix(stream)}:delayed:schema-ids"


def class_lane(stream: str, execution_class: str) -> str:
    """The stream where delayed entries of `stream` in `execution_class` (e.g. long) arrive."""
    return f"{slot_prefix(stream)}:class:{execution_class}"


def is_class_lane(stream: str) -> bool:
    """Whether `stream` is a class lane (`class_lane`'s form): only the sweeper writes one."""
    base, sep, execution_class = stream.rpartition(":class:")
    return (
        bool(sep) and has_hash_tag(base) and EXECUTION_CLASS.fullmatch(execution_class) is not None
    )


def bridge_seen(stream: str) -> str:
    """Base name of a redundant bridge's dedup window into `stream`: hashes `<base>:<n>`."""
    return f"{slot_prefix(stream)}:bridge:seen"


def bridge_fence(stream: str) -> str:
    """String: the highest bridge lease epoch that wrote `stream` (Cluster fencing)."""
    return f"{slot_prefix(stream)}:bridge:fence"


def bridge_role(name: str) -> str:
    """The lease role of the bridge called `name` (its key is `lease(bridge_role(name))`)."""
    return f"bridge:{name}"


def task_record(queue_stream: str, task_id: str) -> str:
    """Hash: one task's record (state, times, result, history), in its queue stream's slot."""
    return f"{slot_prefix(queue_stream)}:task:{task_id}"


def task_record_pattern(queue_stream: str) -> str:
    """SCAN pattern of every task record of `queue_stream` (its {tag} escaped for MATCH)."""
    tag = slot_prefix(queue_stream)
    escaped = "".join("\\" + ch if ch in "*?[]\\" else ch for ch in tag)
    return f"{escaped}:task:*"


def schedule_fired(queue_stream: str, schedule: str, fire_ms: int) -> str:
    """String: set once when `schedule` fired for `fire_ms`, in the queue's slot (idempotency)."""
    return f"{slot_prefix(queue_stream)}:fired:{schedule}:{fire_ms}"


# -- global keys (configured prefix) ------------------------------------------------------------


def task_queue(queue: str, target: str | None = None, prefix: str = DEFAULT_PREFIX) -> str:
    """Stream: the entries of a task queue (`@target`: only the workers of that target read)."""
    return f"{prefix}tasks:{queue}" + (f"@{target}" if target else "")


def task_queues(prefix: str = DEFAULT_PREFIX) -> str:
    """Set: every task queue stream enqueued to, so the CLI finds their records."""
    return f"{prefix}tasks:queues"


def schedules(prefix: str = DEFAULT_PREFIX) -> str:
    """Set: the name of every schedule (tasks/schedules.py)."""
    return f"{prefix}schedules"


def schedule(name: str, prefix: str = DEFAULT_PREFIX) -> str:
    """Hash: one schedule's timetable, its task's arguments, its last fire, paused or not."""
    return f"{prefix}schedule:{name}"


def schemas(prefix: str = DEFAULT_PREFIX) -> str:
    """Hash: schema_id -> SchemaRecord bytes."""
    return f"{prefix}schemas"


def schemas_epoch(prefix: str = DEFAULT_PREFIX) -> str:
    """Counter: how many schema records were ever added (caches drop remembered misses on a
    change)."""
    return f"{prefix}schemas:epoch"


def subject_versions(subject: str, prefix: str = DEFAULT_PREFIX) -> str:
    """List: the schema ids of `subject`, oldest first (version n is index n - 1)."""
    return f"{prefix}subject:{subject}"


def subject_compatibility(subject: str, prefix: str = DEFAULT_PREFIX) -> str:
    """String: the compatibility mode of `subject` (BACKWARD, FULL_TRANSITIVE, ...)."""
    return f"{prefix}compat:{subject}"


def subjects(prefix: str = DEFAULT_PREFIX) -> str:
    """Set: every subject name, for listing."""
    return f"{prefix}subjects"


def lease(role: str, prefix: str = DEFAULT_PREFIX) -> str:
    """String: the token of the current holder of `role` (set with NX PX)."""
    return f"{prefix}lease:{role}"


def lease_epoch(role: str, prefix: str = DEFAULT_PREFIX) -> str:
    """Counter: one more for each term of `role`'s lease; orders leaders for fencing."""
    return f"{prefix}lease:{role}:epoch"


def delayed_targets(prefix: str = DEFAULT_PREFIX) -> str:
    """Set: every stream that has a delayed store, so the sweeper knows where to look."""
    return f"{prefix}delayed:targets"


def delayed_wake(prefix: str = DEFAULT_PREFIX) -> str:
    """Pub/sub channel: a new earliest due time was scheduled; the sweeper wakes early."""
    return f"{prefix}delayed:wake"


# -- cluster hash slots (pure, for tests and for grouping keys) ---------------------------------


def _crc16(data: bytes) -> int:
    crc = 0
    for byte in data:
        crc ^= byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) if crc & 0x8000 else (crc << 1)
            crc &= 0xFFFF
    return crc


def key_slot(key: bytes) -> int:
    """The Redis Cluster hash slot of `key` (CRC16 of the key or of its `{tag}`, mod 16384)."""
    start = key.find(b"{")
    if start >= 0:
        end = key.find(b"}", start + 1)
        if end > start + 1:
            key = key[start + 1 : end]
    return _crc16(key) % 16384
