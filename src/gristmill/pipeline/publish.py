"""Stage 5 of 5: one EVALSHA per batch commits every output and every ack (commit_batch.lua).

The arguments are packed here, flat, so the script walks them without decoding anything.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from gristmill import scripts
from gristmill.envelope import PAYLOAD, SCHEMA_ID
from gristmill.pipeline.resp import pack_command

if TYPE_CHECKING:
    from gristmill.pipeline.encode import Outputs

COMMIT = scripts.load("commit_batch")
_OP_XADD = b"x"
_OP_DELAY = b"d"
_OP_ENVELOPE = b"e"
_SMALL = 64
_COUNTS = tuple(str(number).encode() for number in range(_SMALL))  # ARGV counts, pre-encoded

Delayed = list[tuple[bytes, int, bytes]]  # (delayed store key, due ms, packed entry)


class Commit:
    """The outputs and acks of one batch, gathered entry by entry, then sent in one call."""

    __slots__ = ("_entries", "_entry_count", "_inputs", "_key_index", "_keys")

    def __init__(self) -> None:
        self._keys: list[bytes] = []
        self._key_index: dict[bytes, bytes] = {}  # key -> its 1-based index, as ARGV bytes
        self._inputs: dict[bytes, int] = {}  # input key index -> entries of it in this batch
        self._entries: list[bytes] = []
        self._entry_count = 0

    def _index(self, key: bytes) -> bytes:
        index = self._key_index.get(key)
        if index is None:
            self._keys.append(key)
            index = self._key_index[key] = str(len(self._keys)).encode()
        return index

    def entry(
        self,
        input_key: bytes,
        entry_id: bytes,
        outputs: Outputs,
        delayed: Delayed | None = None,
    ) -> None:
        """Ack `entry_id` of `input_key`, XADD `outputs` and park `delayed`, if still ours."""
        key_index = self._key_index
        index = key_index.get(input_key) or self._index(input_key)
        self._inputs[index] = self._inputs.get(index, 0) + 1
        entries = self._entries
        ops = len(outputs) + len(delayed) if delayed else len(outputs)
        entries += (index, entry_id, _COUNTS[ops] if ops < _SMALL else str(ops).encode())
        for stream, fields in outputs:
            target = key_index.get(stream) or self._index(stream)
            items = len(fields)
            if items == 4 and fields[0] is SCHEMA_ID and fields[2] is PAYLOAD:
                entries += (_OP_ENVELOPE, target, fields[1], fields[3])  # the usual entry
                continue
            entries += (_OP_XADD, target, _COUNTS[items] if items < _SMALL else str(items).encode())
            entries += fields
        for store, due_ms, member in delayed or ():
            entries += (_OP_DELAY, self._index(store), str(due_ms).encode(), member)
        self._entry_count += 1

    def __len__(self) -> int:
        return self._entry_count

    def pack(self, group: bytes, consumer: bytes, wake_channel: bytes, bucket_ms: int) -> bytes:
        """The EVALSHA command, packed (commit_batch.lua documents the arguments)."""
        args: list[bytes | str | int | float] = [b"EVALSHA", COMMIT.sha.encode(), len(self._keys)]
        args += self._keys
        args += (group, consumer, wake_channel, bucket_ms, len(self._inputs))
        for index, count in self._inputs.items():
            # the whole PEL of this consumer: it holds this batch (and rarely leftovers)
            args += (index, b"-", b"+", count)
        args.append(self._entry_count)
        args += self._entries
        return pack_command(tuple(args))
