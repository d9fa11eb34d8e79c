"""Stage 5 of 5: one EVALSHA per batch commits every output and every ack (commit_batch.lua).

The arguments are packed here, flat, so the script walks them without decoding anything. On
Redis Cluster, outputs in other hash slots than the input are written first (`write_ahead`).
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from gristmill import keys, scripts
from gristmill.envelope import PAYLOAD, SCHEMA_ID
from gristmill.errors import CommitRefused
from gristmill.pipeline.resp import is_error, pack_command
from gristmill.replication import check_wait

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from gristmill.pipeline.cluster import Address
    from gristmill.pipeline.encode import Outputs
    from gristmill.pipeline.resp import RespConnection

COMMIT = scripts.load("commit_batch")
_OP_XADD = b"x"
_OP_DELAY = b"d"
_OP_ENVELOPE = b"e"
_OP_RECORD = b"h"
_SMALL = 64
_COUNTS = tuple(str(number).encode() for number in range(_SMALL))  # ARGV counts, pre-encoded

Delayed = list[tuple[bytes, int, bytes]]  # (delayed store key, due ms, packed entry)
# a task record's update: (its key, ttl ms or 0, a history line or b"", field/value items)
RecordOp = tuple[bytes, int, bytes, list[bytes]]

# what the script does to a key; it checks ACL and TYPE for each before its first write
_ACK, _ADD, _STORE, _HASH = 1, 2, 4, 8
_ROLE_LETTER = {
    _ACK: ord("i"), _ADD: ord("s"), _ACK | _ADD: ord("a"), _STORE: ord("d"), _HASH: ord("h"),
}  # fmt: skip


def _later(a: bytes, b: bytes) -> bool:
    """True if stream id `a` comes after `b` (ids of equal length compare as bytes)."""
    if len(a) == len(b):
        return a > b
    a_ms, _, a_seq = a.partition(b"-")
    b_ms, _, b_seq = b.partition(b"-")
    return (int(a_ms), int(a_seq or 0)) > (int(b_ms), int(b_seq or 0))


class Commit:
    """The outputs and acks of one batch, gathered entry by entry, then sent in one call."""

    __slots__ = ("_entries", "_entry_count", "_key_index", "_keys", "_roles", "_spans")

    def __init__(self) -> None:
        self._keys: list[bytes] = []
        self._key_index: dict[bytes, bytes] = {}  # key -> its 1-based index, as ARGV bytes
        self._roles: list[int] = []  # per key: a bit set of _ACK, _ADD, _STORE
        # input key index -> [lowest id, highest id, entries of it in this batch]
        self._spans: dict[bytes, list[Any]] = {}
        self._entries: list[bytes] = []
        self._entry_count = 0

    def _index(self, key: bytes, role: int) -> bytes:
        index = self._key_index.get(key)
        if index is None:
            self._keys.append(key)
            self._roles.append(role)
            index = self._key_index[key] = str(len(self._keys)).encode()
        else:
            self._roles[int(index) - 1] |= role
        return index

    def entry(
        self,
        input_key: bytes,
        entry_id: bytes,
        outputs: Outputs,
        delayed: Delayed | None = None,
        record: RecordOp | None = None,
    ) -> None:
        """Ack `entry_id` of `input_key`, XADD `outputs`, park `delayed` and update a task's
        `record`, if the entry is still ours."""
        key_index = self._key_index
        index = key_index.get(input_key) or self._index(input_key, _ACK)
        span = self._spans.get(index)
        if span is None:
            self._spans[index] = [entry_id, entry_id, 1]
        else:
            if _later(entry_id, span[1]):
                span[1] = entry_id
            elif _later(span[0], entry_id):
                span[0] = entry_id
            span[2] += 1
        entries = self._entries
        ops = len(outputs) + len(delayed) if delayed else len(outputs)
        if record is not None:
            ops += 1
        entries += (index, entry_id, _COUNTS[ops] if ops < _SMALL else str(ops).encode())
        for stream, fields in outputs:
            target = key_index.get(stream) or self._index(stream, _ADD)
            items = len(fields)
            if items == 4 and fields[0] is SCHEMA_ID and fields[2] is PAYLOAD:
                entries += (_OP_ENVELOPE, target, fields[1], fields[3])  # the usual entry
                continue
            entries += (_OP_XADD, target, _COUNTS[items] if items < _SMALL else str(items).encode())
            entries += fields
        for store, due_ms, member in delayed or ():
            entries += (_OP_DELAY, self._index(store, _STORE), str(due_ms).encode(), member)
        if record is not None:
            key, ttl_ms, line, record_items = record
            entries += (_OP_RECORD, self._index(key, _HASH), str(ttl_ms).encode(), line)
            entries.append(str(len(record_items)).encode())
            entries += record_items
        self._entry_count += 1

    def __len__(self) -> int:
        return self._entry_count

    def pack(self, group: bytes, consumer: bytes, wake_channel: bytes, bucket_ms: int) -> bytes:
        """The EVALSHA command, packed (commit_batch.lua documents the arguments)."""
        args: list[bytes | str | int | float] = [b"EVALSHA", COMMIT.sha.encode(), len(self._keys)]
        args += self._keys
        roles = bytes(_ROLE_LETTER[role] for role in self._roles)
        args += (group, consumer, wake_channel, bucket_ms, roles, len(self._spans))
        for index, (first, last, count) in self._spans.items():
            args += (index, first, last, count)  # exactly this batch's ids of this input
        args.append(self._entry_count)
        args += self._entries
        return pack_command(tuple(args))


def skipped_by(reply: Any, processor: str) -> list[bytes]:
    """The entry ids a commit's reply says were skipped (claimed by another consumer).

    Raises:
        CommitRefused: If the server refused the commit. The script checks ACL, key types
            and memory before its first write, so a refusal wrote nothing; a retry would only
            be refused again, so the process stops instead.
    """
    if is_error(reply):
        raise CommitRefused(
            f"{processor}: the server refused a commit ({reply}); it wrote nothing, "
            "and this process stops so that it does not retry it forever. Check the ACL "
            "of this user (XADD, XACK, EVALSHA, RPUSH, ZADD), the keys' types and the "
            "server's maxmemory; another replica may take the entries over meanwhile"
        )
    return list(reply[1:])


async def write_ahead(
    master_of: Callable[[int], Awaitable[tuple[Address, RespConnection]]],
    outputs: Outputs,
    replicas: int = 0,
    timeout_ms: int = 0,
    seen: dict[Address, int] | None = None,
) -> None:
    """XADD `outputs` to the masters of their slots, one pipeline per master, all at once;
    with `replicas`, each master's writes are waited for (WAIT) by up to that many replicas.

    Runs before the commit script, which can only write its input's slot: a crash between
    the two redelivers the inputs and writes these again (at-least-once). Replication is
    asynchronous, so without the WAIT a master killed right after answering may take these
    outputs with it while their inputs, on another master, are acked: lost.

    The wait counts the replicas the master has online now (ROLE, sent first in the same
    pipeline): a master left without one, after a failover until a replica rejoins, is
    written without waiting rather than stalling the pipeline. `seen` keeps each master's
    count from its last write, so the usual write is one round trip.

    Raises:
        ReplyError: If a master refuses one (MOVED during a failover): an incident.
        ReplicationTimeout: If fewer of its online replicas had them within `timeout_ms`:
            an incident too (the inputs stay unacked and are redone, at-least-once).
    """
    by_stream: dict[bytes, list[tuple[bytes, ...]]] = {}
    for stream, fields in outputs:  # a batch's outputs go to a few streams: slot each once
        by_stream.setdefault(stream, []).append((b"XADD", stream, b"*", *fields))
    by_node: dict[Address, tuple[RespConnection, list[tuple[bytes, ...]]]] = {}
    for stream, commands in by_stream.items():
        address, node = await master_of(keys.key_slot(stream))
        by_node.setdefault(address, (node, []))[1].extend(commands)
    if not replicas:
        await asyncio.gather(*(node.pipeline(commands) for node, commands in by_node.values()))
        return
    known = {} if seen is None else seen
    await asyncio.gather(
        *(
            _write_waited(node, commands, replicas, timeout_ms, known, address)
            for address, (node, commands) in by_node.items()
        )
    )


async def _write_waited(
    node: RespConnection,
    commands: list[tuple[bytes, ...]],
    replicas: int,
    timeout_ms: int,
    seen: dict[Address, int],
    address: Address,
) -> None:
    """`commands` on one master, then a WAIT for up to `replicas` of its online replicas."""
    timeout = str(timeout_ms).encode()
    expected = min(replicas, seen.get(address, 0))  # unknown: ROLE tells, then one more WAIT
    tail = [(b"WAIT", str(expected).encode(), timeout)] if expected else []
    replies = await node.pipeline([(b"ROLE",), *commands, *tail])
    online = seen[address] = online_replicas(replies[0])
    due = min(replicas, online)
    if not due:
        return  # no replica to wait for: a failover cannot promote one that lacks these
    if expected:
        acknowledged = int(replies[-1])
    else:
        acknowledged = int((await node.pipeline([(b"WAIT", str(due).encode(), timeout)]))[0])
    check_wait(acknowledged, due, timeout_ms)


def online_replicas(role: Any) -> int:
    """How many replicas a master's ROLE reply lists (`[b"master", offset, [[ip, port,
    offset], ...]]`): those online, the ones a WAIT can count."""
    return len(role[2]) if role and role[0] == b"master" else 0
