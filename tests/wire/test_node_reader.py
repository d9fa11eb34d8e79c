"""An outside reader, written in Node.js from docs/wire-format.md alone, agrees with gristmill.

Every kind of entry gristmill writes is produced for real on the test server (Publisher, a
running processor whose handler fails, retries and requeues, a bridge-style raw entry, and
entries the doc says a reader must refuse); then `reader.mjs` reads the streams over its own
RESP client and each of its JSON lines is compared with what gristmill says about the entry.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from google.protobuf import json_format
from google.protobuf.timestamp_pb2 import Timestamp

from gristmill import App, RetryPolicy, Settings, decode, keys
from gristmill.envelope import open_fields
from gristmill.errors import DecodeError
from gristmill.failures.deadletter import parse_fields
from gristmill.producer import Publisher
from gristmill.schemas.protofiles import load_proto
from gristmill.testing import run_until_idle
from gristmill.timing.packing import pack_varint  # protobuf varints are the same LEB128

if TYPE_CHECKING:
    from google.protobuf.message import Message
    from redis.asyncio import Redis

    from gristmill.context import Context
    from gristmill.embedded import EmbeddedServer

NODE = shutil.which("node")
HERE = Path(__file__).resolve().parent
READER = HERE / "reader.mjs"
MAX_ENTRY_BYTES = 1 << 20

WIRE = load_proto(HERE / "wire.proto")
LEGACY_SCHEMA = load_proto(HERE / "legacy.proto")
Order: Any = WIRE["wire.v1.Order"]
Point: Any = WIRE["wire.v1.Point"]
Tree: Any = WIRE["wire.v1.Tree"]
WIRE_POOL = Order.DESCRIPTOR.file.pool
Legacy: Any = LEGACY_SCHEMA["wire.legacy.Legacy"]

PLAIN = "w.plain"  # published directly, plus the entries a reader must refuse
INPUT = "w.in"  # read by the processor below
RAW = "w.raw"  # raw JSON entries, as a bridge writes them, read by a JSON processor
OUTPUT = "w.out"
GROUP = "wire.relay"
RETRY = keys.retry_lane(INPUT, GROUP)
DEAD = keys.dead_lane(INPUT, GROUP)
RAW_DEAD = keys.dead_lane(RAW, "wire.points")
STREAMS = (PLAIN, INPUT, RAW, OUTPUT, RETRY, DEAD, RAW_DEAD)
TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
UNKNOWN_ID = b"s1AAAAAAAAAAAAAAAA"

FULL_ORDER: dict[str, Any] = {
    "orderId": "o-1 ünï",
    "totalCents": "9007199254740993",  # past 2^53
    "bigUnsigned": "18446744073709551615",
    "signedBig": "-9223372036854775808",
    "fixedBig": "42",
    "smallSigned": -7,
    "smallFixed": 4294967295,
    "smallUnsigned": 3000000000,
    "smallInt": -2147483648,
    "ratioDouble": 0.1,
    "ratioFloat": 3.14159,
    "isPaid": True,
    "rawBlob": "AAEC/w==",
    "orderStatus": "STATUS_RETIRED",
    "mainShape": {
        "shapeName": "tri",
        "cornerPoints": [{"xPos": 1, "yPos": -1}, {}, {"xPos": -300}],
        "mainLabel": {"labelText": "A", "anchorPoints": [{"yPos": 2}]},
    },
    "otherShapes": [{"shapeName": "s1"}, {"mainLabel": {}}],
    "tagNames": ["a", "", "ç"],
    "sampleValues": ["1", "-1", "0", "9223372036854775807"],
    "statusHistory": ["STATUS_UNSPECIFIED", "STATUS_ACTIVE", 9],  # 9: an unknown value
    "itemCounts": {"tea": "3", "cake": "-5", "zero": "0"},
    "codeNames": {"-1": "minus", "0": "zero", "7": "seven"},
    "namedPaths": {"home": {"pointItems": [{"xPos": 1}, {"yPos": 2}]}, "empty": {}},
    "flagStates": {"true": "STATUS_ACTIVE", "false": "STATUS_UNSPECIFIED"},
    "blobIndex": {"18446744073709551615": "/w==", "0": ""},
    "shipTo": {"xPos": 5},
    "maybeCount": 0,  # proto3 `optional`: kept at zero
    "createdAt": "2026-12-02T15:04:05.123Z",
    "timeTaken": "-1.500s",
    "extraData": {"k": [1, "two", None, {"deep": True}], "n": 2.5},
    "anyValue": {"nested": ["list", 1]},
    "valueList": [1, "x", False, None],
    "boxedInt": "-5",
    "boxedText": "",
    "updateMask": "orderId,mainShape.shapeName",
    "nothingHere": {},
    "packedAny": {"@type": "type.googleapis.com/wire.v1.Point", "xPos": 5, "yPos": 6},
    "customName": "json_name honoured",
    "doubleList": [1.0, -0.5, 1e300, "NaN", "Infinity", "-Infinity"],
    "eventTimes": {"a": "1970-01-01T00:00:00Z", "b": "0001-01-01T00:00:00.000001Z"},
    "boxedBytes": "",
    "boxedDouble": 0.0,
}


def order(doc: dict[str, Any]) -> Message:
    message: Message = json_format.ParseDict(doc, Order(), descriptor_pool=WIRE_POOL)
    return message


def nested_tree(depth: int) -> bytes:
    """A Tree payload whose deepest sub-message is at level `depth` (root: 0), built by hand."""
    payload = b"\x12\x04leaf"  # leaf_name at the deepest level
    for _ in range(depth):
        payload = b"\x0a" + pack_varint(len(payload)) + payload
    return payload


async def xadd(redis: Redis, stream: str, *items: str | bytes) -> str:
    entry_id = await redis.execute_command("XADD", stream, "*", *items)  # type: ignore[no-untyped-call]
    return entry_id.decode() if isinstance(entry_id, bytes) else str(entry_id)


async def entries(redis: Redis, stream: str) -> list[tuple[str, list[bytes]]]:
    reply = await redis.execute_command(b"XRANGE", stream, "-", "+")  # type: ignore[no-untyped-call]
    return [(entry_id.decode(), list(items)) for entry_id, items in reply]


# -- producing every kind of entry -------------------------------------------------------------


async def produce_plain(redis: Redis, publisher: Publisher) -> None:
    await publisher.publish(
        PLAIN, order(FULL_ORDER), key="cust-7", headers={"tenant": "acme", "note": "ünï"}
    )
    # defaults left out, a oneof member and a proto3 `optional` at their zero values kept
    await publisher.publish(PLAIN, order({"orderId": "sparse", "pickupStore": "", "maybeCount": 0}))
    await publisher.publish(PLAIN, order({}))  # an empty message
    legacy = json_format.ParseDict(
        {"legacyId": "L1", "zeroCount": 0, "levelValue": "LEVEL_LOW", "packedInts": [1, -2, 3],
         "unpackedInts": [4, 5], "extra": {"noteText": "g"}, "flagOff": False},
        Legacy(),
    )  # fmt: skip
    await publisher.publish(PLAIN, legacy)  # proto2: presence, packed and unpacked, a group
    await publisher.publish(PLAIN, Legacy(legacy_id="only"))
    stamp = json_format.Parse('"2026-01-02T03:04:05.000006Z"', Timestamp())
    await publisher.publish(PLAIN, stamp)  # a bare well-known type: an empty file_set
    big = order({"orderId": "big", "tagNames": [f"tag-{n:05d}" for n in range(2000)]})
    await publisher.publish(PLAIN, big, key="big")  # over compress_above: zstd
    tree_id = await publisher.schema_id(Tree.DESCRIPTOR)
    order_id = await publisher.schema_id(Order.DESCRIPTOR)
    await xadd(redis, PLAIN, "schema_id", tree_id, "payload", nested_tree(100))  # the limit: read
    await xadd(redis, PLAIN, "schema_id", tree_id, "payload", nested_tree(101))  # decode_depth
    await xadd(redis, PLAIN, "schema_id", UNKNOWN_ID, "payload", b"")  # unknown_schema
    await xadd(redis, PLAIN, "schema_id", order_id)  # missing_field
    await xadd(redis, PLAIN, "schema_id", order_id, "payload", b"\x08", "encoding", "gzip")
    await xadd(redis, PLAIN, "schema_id", order_id, "payload", b"\x0f")  # decode_error
    await xadd(redis, PLAIN, "schema_id", order_id, "payload", b"\x0a\x05ab")  # truncated
    await xadd(redis, PLAIN, "schema_id", order_id, "payload", b"\x00" * (MAX_ENTRY_BYTES + 1))
    # a record stored under an id it does not hash to: schema_invalid
    record = await redis.hget("gm:schemas", order_id)
    assert isinstance(record, bytes)
    forged = b"s1forgedforgedforg"
    await redis.hset("gm:schemas", forged, record)
    await xadd(redis, PLAIN, "schema_id", forged, "payload", b"")


def relay_app() -> App:
    app = App("wire")
    policy = RetryPolicy(max_attempts=3, initial_delay=0.02, multiplier=1.0, jitter=0.0)

    @app.processor(input=INPUT, output=OUTPUT, from_beginning=True, retry=policy)
    async def relay(message: Any, ctx: Context) -> Any:
        fail = ctx.headers.get("fail")
        if fail == "always" or (fail == "once" and ctx.attempt == 1):
            raise ValueError(f"attempt {ctx.attempt}: cannot relay")
        if ctx.headers.get("requeue") and ctx.requeues == 0:
            ctx.requeue(0)
            return None
        return message

    @app.processor(input=RAW, output=OUTPUT, from_beginning=True, input_format="json")
    async def points(point: Point, ctx: Context) -> Any:
        return point

    return app


async def produce_lanes(server: EmbeddedServer, redis: Redis, publisher: Publisher) -> None:
    """Entries in the input, output, retry and dead-letter lanes, made by a real processor."""
    traced = await publisher.fields(
        order({"orderId": "traced", "shipTo": {"yPos": 1}}), key="k-1", headers={"tenant": "t"}
    )
    await xadd(redis, INPUT, *traced, "traceparent", TRACEPARENT, "tracestate", "gm=1")
    await publisher.publish(INPUT, order({"orderId": "flaky"}), key="k-2", headers={"fail": "once"})
    await publisher.publish(INPUT, order(FULL_ORDER), key="k-3", headers={"fail": "always"})
    await publisher.publish(INPUT, order({"orderId": "again"}), headers={"requeue": "1"})
    order_id = await publisher.schema_id(Order.DESCRIPTOR)
    await xadd(redis, INPUT, "schema_id", order_id, "payload", b"\x0f", "h:why", "garbage")
    await xadd(redis, INPUT, "schema_id", UNKNOWN_ID, "payload", b"", "h:why", "unknown")
    # as a bridge writes them: the published bytes, no schema_id (`channel`: a pattern bridge)
    await xadd(redis, RAW, "payload", b'{"xPos": 1, "y_pos": -2}', "channel", "points.eu")
    await xadd(redis, RAW, "payload", b"[1, 2]", "channel", "points.eu")  # not an object
    await xadd(redis, RAW, "payload", b'{"xPos": 1, "zPos": 3}')  # json_unknown_field
    await xadd(redis, RAW, "payload", b"\xff{}")  # not UTF-8
    settings = Settings(delayed_bucket_ms=10, block_ms=50, claim_idle=5.0, health_port=0)
    await run_until_idle(relay_app(), url=server.url, redis=redis, settings=settings)


# -- what gristmill says about an entry --------------------------------------------------------


def expected_envelope(fields: list[bytes]) -> dict[str, Any]:
    values = dict(zip(fields[::2], fields[1::2], strict=True))
    try:
        envelope = open_fields(fields, MAX_ENTRY_BYTES)
    except DecodeError:  # refused: the fields as stored
        attempt = int(values.get(b"attempt", b"1"))
        requeues = int(values.get(b"requeues", b"0"))
        headers = {
            k[2:].decode(): v.decode() for k, v in values.items() if k.startswith(b"h:")
        }  # fmt: skip
        trace = {k.decode(): v.decode() for k, v in values.items() if k in TRACE_FIELDS}
        key, origin, failed_at = values.get(b"key"), values.get(b"origin"), None
    else:
        attempt, requeues, headers = envelope.attempt, envelope.requeues, dict(envelope.headers)
        trace, key, origin = dict(envelope.trace), envelope.key, envelope.origin
        failed_at = envelope.failed_at
    expected: dict[str, Any] = {"attempt": attempt, "requeues": requeues, "headers": headers}
    expected |= trace
    for name, value in (("key", key), ("origin", origin)):
        if value is not None:
            expected[name] = value.decode()
    if failed_at is not None:
        expected["failed_at"] = str(failed_at)
    for field in (b"encoding", b"channel"):
        if field in values:
            expected[field.decode()] = values[field].decode()
    return expected


TRACE_FIELDS = (b"traceparent", b"tracestate")


async def expected_line(
    redis: Redis, stream: str, entry_id: str, items: list[bytes]
) -> dict[str, Any]:
    expected: dict[str, Any] = {"stream": stream, "id": entry_id}
    fields = items
    if stream in (DEAD, RAW_DEAD):
        record = parse_fields(items)
        fields = record.fields
        expected["dl"] = {
            "dl:reason": record.reason, "dl:exception": record.exception,
            "dl:message": record.message, "dl:traceback": record.traceback,
            "dl:attempts": str(record.attempts), "dl:origin_stream": record.origin_stream,
            "dl:origin_id": record.origin_id, "dl:first_failure_ms": str(record.first_failure_ms),
            "dl:last_failure_ms": str(record.last_failure_ms), "dl:fields": str(len(fields)),
        }  # fmt: skip
    values = dict(zip(fields[::2], fields[1::2], strict=True))
    expected["envelope"] = expected_envelope(fields)
    if b"schema_id" in values:
        expected["kind"] = "protobuf"
        expected["schema_id"] = values[b"schema_id"].decode()
    else:
        expected["kind"] = "raw"
    try:
        expected["payload"] = await decode(fields, redis, as_json=True)
    except DecodeError as refused:
        expected["refused"] = refused.reason
    return expected


def compared(line: dict[str, Any]) -> dict[str, Any]:
    """The reader's line without what only it prints (checked on its own)."""
    return {k: v for k, v in line.items() if k not in ("recomputed_id", "message_name", "detail")}


def run_reader(server: EmbeddedServer, *streams: str) -> list[dict[str, Any]]:
    assert NODE is not None
    done = subprocess.run(
        [NODE, str(READER), "--port", str(server.port), *streams],
        capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip
    assert done.returncode == 0, f"reader.mjs failed:\n{done.stderr}"
    return [json.loads(line) for line in done.stdout.splitlines()]


# -- the test ----------------------------------------------------------------------------------


@pytest.mark.skipif(NODE is None, reason="node is not installed")
async def test_a_node_reader_written_from_the_doc_agrees_on_every_entry(
    server: EmbeddedServer, redis: Redis
) -> None:
    publisher = Publisher(redis)
    await produce_plain(redis, publisher)
    await produce_lanes(server, redis, publisher)

    stored = {stream: await entries(redis, stream) for stream in STREAMS}
    lines = await asyncio.to_thread(run_reader, server, *STREAMS)
    assert [(line["stream"], line["id"]) for line in lines] == [
        (stream, entry_id) for stream in STREAMS for entry_id, _ in stored[stream]
    ], "the reader did not print one line per entry, in order"

    mismatches = []
    by_entry = {(s, entry_id): items for s in STREAMS for entry_id, items in stored[s]}
    for line in lines:
        items = by_entry[line["stream"], line["id"]]
        expected = await expected_line(redis, line["stream"], line["id"], items)
        if compared(line) != expected:
            mismatches.append(_difference(expected, compared(line)))
        if "recomputed_id" in line and line.get("refused") != "schema_invalid":
            assert line["recomputed_id"] == line["schema_id"], line
    assert not mismatches, "the Node reader disagrees with gristmill:\n" + "\n".join(mismatches)
    # and with protobuf's own JSON mapping of the message as built here
    full = json_format.MessageToDict(order(FULL_ORDER), descriptor_pool=WIRE_POOL)
    assert lines[0]["payload"] == full

    check_coverage(lines)


def _difference(expected: dict[str, Any], got: dict[str, Any]) -> str:
    where = f"{expected['stream']} {expected['id']}"
    parts = [where]
    for name in sorted(set(expected) | set(got)):
        if expected.get(name) != got.get(name):
            parts.append(f"  {name}: gristmill {_short(expected.get(name))}")
            parts.append(f"  {' ' * len(name)}  reader   {_short(got.get(name))}")
            if isinstance(expected.get(name), dict) and isinstance(got.get(name), dict):
                parts.extend(
                    f"    .{key}: gristmill {_short(expected[name].get(key))}, "
                    f"reader {_short(got[name].get(key))}"
                    for key in sorted(set(expected[name]) | set(got[name]))
                    if expected[name].get(key) != got[name].get(key)
                )
    return "\n".join(parts)


def _short(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False)
    return text if len(text) <= 300 else text[:300] + "..."


def check_coverage(lines: list[dict[str, Any]]) -> None:
    """The streams held every kind the test means to cover (so it cannot pass vacuously)."""
    refused = {line["refused"] for line in lines if "refused" in line}
    assert refused >= {
        "unknown_schema", "missing_field", "bad_encoding", "decode_error", "decode_depth",
        "oversize", "schema_invalid", "json_invalid",
    }, refused  # fmt: skip
    assert any(ln["envelope"].get("encoding") == "zstd" and "payload" in ln for ln in lines)
    envelopes = [line["envelope"] for line in lines]
    outputs = [line["envelope"] for line in lines if line["stream"] == OUTPUT]
    assert any(e.get("traceparent") == TRACEPARENT and e.get("key") == "k-1" for e in outputs)
    assert any(e["attempt"] >= 2 and "failed_at" in e and "origin" in e for e in envelopes)
    assert any(e["requeues"] == 1 for e in envelopes)
    assert any(e.get("key") == "cust-7" and e["headers"] for e in envelopes)
    reasons = {line["dl"]["dl:reason"] for line in lines if "dl" in line}
    assert reasons >= {"retries_exhausted", "decode_error", "unknown_schema"}, reasons
    raw_reasons = [line["dl"]["dl:reason"] for line in lines if line["stream"] == RAW_DEAD]
    assert raw_reasons == ["json_invalid", "json_unknown_field", "json_invalid"], raw_reasons
    assert any(ln["kind"] == "raw" and "payload" in ln for ln in lines)
    assert any(ln.get("payload") == "2026-01-02T03:04:05.000006Z" for ln in lines)
    assert any(
        isinstance(ln.get("payload"), dict) and "customName" in ln["payload"] for ln in lines
    )
