"""`handloop-raw`: the same loop as `handloop`, speaking RESP over one asyncio connection.

Commands are packed with hiredis.pack_command and replies parsed by hiredis.Reader, with no
client library in between: the practical ceiling for Python on this loop.
"""

from __future__ import annotations

import asyncio
import os

from bench.payload import stage_work
from bench.peers.common import BATCH, PeerArgs, parse_args, run_until_terminated
from bench.resp import ReplyError, RespConnection, pack

_PAYLOAD = b"payload"


async def stage(args: PeerArgs, number: int) -> None:
    source, target = args.streams[number], args.streams[number + 1]
    work = stage_work(number)
    connection = await RespConnection.open(args.url)
    try:
        await connection.call(pack("XGROUP", "CREATE", source, args.group, "0", "MKSTREAM"))
    except ReplyError as exc:
        if "BUSYGROUP" not in str(exc):
            raise
    read = pack(
        "XREADGROUP", "GROUP", args.group, f"handloop-raw-{os.getpid()}",
        "COUNT", BATCH, "BLOCK", 1000, "STREAMS", source, ">",
    )  # fmt: skip
    schema_id = args.schema_id.encode()
    ack_head = ("XACK", source, args.group)
    while True:
        (reply,) = await connection.call(read)
        for _stream, entries in reply or ():
            commands = []
            for _entry_id, fields in entries:
                payload = fields[fields.index(_PAYLOAD) + 1]
                commands.append(
                    pack("XADD", target, "*", "schema_id", schema_id, _PAYLOAD, work(payload))
                )
            commands.append(pack(*ack_head, *[entry[0] for entry in entries]))
            await connection.call(*commands)


async def main(args: PeerArgs) -> None:
    await asyncio.gather(*(stage(args, n) for n in range(len(args.streams) - 1)))


if __name__ == "__main__":
    run_until_terminated(main(parse_args(__doc__ or "")))
