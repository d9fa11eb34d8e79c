"""Stage 4 of 5: the messages a handler returned or published -> entry fields per stream.

`BatchEncoder.encode` owns the stage: each handled entry's outputs (with a requeue or a task's
record) go into the batch's `Commit`, and a failed entry to its retry or dead letter
(failures/route.py). `encode_slot` encodes one entry: the fast path for one returned message
of a known type, the general path for lists and `ctx.publish`, and the registration of a type
this process has not registered yet (then it encodes again). On a cluster, outputs in other
slots than the processor's home slot come back apart, to be written ahead of the commit.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from google.protobuf.message import Message

from gristmill.envelope import PAYLOAD, SCHEMA_ID, TRACEPARENT, TRACESTATE, carried_fields, seal
from gristmill.errors import ConfigError
from gristmill.pipeline.publish import Commit

if TYPE_CHECKING:
    from collections.abc import Sequence

    from gristmill.clock import Clock
    from gristmill.failures.route import FailureRouter
    from gristmill.pipeline.batch import ProcessorStats, Slot
    from gristmill.schemas.cache import SchemaCache
    from gristmill.settings import Settings
    from gristmill.specs import ProcessorSpec

Outputs = list[tuple[bytes, list[bytes]]]  # (stream, fields) in publish order


class BatchEncoder:
    """Builds one processor's commit from a handled batch."""

    def __init__(
        self,
        spec: ProcessorSpec,
        settings: Settings,
        cache: SchemaCache,
        streams: tuple[bytes, ...],
        router: FailureRouter,
        stats: ProcessorStats,
        clock: Clock,
        foreign: frozenset[bytes] = frozenset(),
    ) -> None:
        self.spec = spec
        self.cache = cache
        self.streams = streams  # what each entry's stream index names (inputs, then lanes)
        self.router = router
        self.stats = stats
        self.clock = clock
        self.foreign = foreign  # on a cluster: the outputs outside the home slot
        self._outputs = tuple(stream.encode() for stream in spec.outputs)
        self._compress_above = settings.compress_above

    async def encode(self, slots: list[Slot]) -> tuple[Commit, Outputs]:
        """The batch's commit, and its outputs in other slots than home (on a cluster)."""
        commit = Commit()
        ahead: Outputs = []  # written before the commit: at-least-once
        foreign, streams, router, tasks = self.foreign, self.streams, self.router, self.spec.tasks
        published = 0
        now_ms = self.clock.now_ms()
        for slot in slots:
            index, entry_id, _, _ = slot.entry
            if slot.failure is None and slot.verdict is None:
                try:
                    outputs = await encode_slot(
                        slot, self.cache, self._outputs, self.spec.name, self._compress_above
                    )
                except Exception as exc:  # noqa: BLE001 - a bad return value fails its entry
                    slot.failure = exc
                else:
                    again = router.requeue(slot, now_ms)  # None unless ctx.requeue()
                    record = tasks.done(slot, now_ms) if tasks is not None else None
                    published += len(outputs)
                    if foreign:
                        ahead += [output for output in outputs if output[0] in foreign]
                        outputs = [output for output in outputs if output[0] not in foreign]
                    commit.entry(streams[index], entry_id, outputs, again, record)
                    continue
            router.route(commit, slot, now_ms)
        self.stats.handled += len(commit)
        self.stats.published += published
        return commit, ahead


def returned_messages(result: object, processor: str) -> Sequence[Message]:
    """A handler's return value as a sequence of messages.

    Raises:
        ConfigError: If it returned something else than a message, a list/tuple of them, or None.
    """
    if result is None:
        return ()
    if isinstance(result, Message):
        return (result,)
    if isinstance(result, list | tuple) and all(isinstance(item, Message) for item in result):
        return result
    raise ConfigError(
        f"processor {processor!r} returned {type(result).__name__}: return a protobuf message, "
        "a list of them, or None"
    )


def encode_one(cache: SchemaCache, message: Message, compress_above: int) -> list[bytes] | None:
    """The fields of one returned message: the common case, without the general path's calls.

    None if its type has no schema id in this process yet (the general path registers it).
    """
    schema_id = cache.cached_id(message.DESCRIPTOR)
    if schema_id is None:
        return None
    payload = message.SerializeToString()
    if compress_above and len(payload) > compress_above:
        return seal(schema_id, payload, compress_above=compress_above)
    return [SCHEMA_ID, schema_id, PAYLOAD, payload]


async def encode_slot(
    slot: Slot, cache: SchemaCache, outputs: tuple[bytes, ...], processor: str, compress_above: int
) -> Outputs:
    """The (stream, fields) a handled entry writes: its returned and its published messages.

    Raises:
        ConfigError: If the handler returned something else than messages, or returned
            messages from a processor without outputs (they would be dropped silently).
    """
    result = slot.result
    carried = carried_fields(slot.envelope) if slot.envelope is not None else None
    if slot.trace:  # telemetry hook: a traced run hands its own span's context on
        carried = [*_without_trace(carried or []), *slot.trace]
    if isinstance(result, Message) and outputs and not slot.published:
        fields = encode_one(cache, result, compress_above)
        if fields is not None:  # one message, a known type: most handlers, every time
            if carried:
                fields = [*fields, *carried]
            return [(stream, fields) for stream in outputs]
    encoded = await _encode_general(slot, cache, outputs, processor, compress_above)
    if carried:
        encoded = [(stream, [*fields, *carried]) for stream, fields in encoded]
    return encoded


async def _encode_general(
    slot: Slot, cache: SchemaCache, outputs: tuple[bytes, ...], processor: str, compress_above: int
) -> Outputs:
    result = slot.result
    messages = returned_messages(result, processor)
    if messages and not outputs:
        raise ConfigError(
            f"processor {processor!r} returned {type(messages[0]).__name__} but declares no "
            "output=: declare output= (or return None and use ctx.publish to a side output)"
        )
    try:
        return encode(cache, messages, outputs, slot.published, compress_above)
    except LookupError:  # a message type this process has not registered yet
        for message in [*messages, *(m for _, m in slot.published)]:
            if cache.cached_id(message.DESCRIPTOR) is None:
                await cache.id_for(message.DESCRIPTOR)
        return encode(cache, messages, outputs, slot.published, compress_above)


def encode(
    cache: SchemaCache,
    returned: Sequence[Message],
    outputs: tuple[bytes, ...],
    published: Sequence[tuple[str, Message]],
    compress_above: int,
) -> Outputs:
    """Fields for every returned message on every output, then every `ctx.publish`.

    Raises:
        LookupError: If a message type has no schema id in this process yet.
    """
    encoded: Outputs = []
    for message in returned:
        fields = _fields(cache, message, compress_above)
        encoded += [(stream, fields) for stream in outputs]
    for stream, message in published:
        encoded.append((stream.encode(), _fields(cache, message, compress_above)))
    return encoded


TRACE_FIELDS = (TRACEPARENT, TRACESTATE)


def _without_trace(carried: list[bytes]) -> list[bytes]:
    pairs = zip(carried[::2], carried[1::2], strict=True)
    return [item for name, value in pairs if name not in TRACE_FIELDS for item in (name, value)]


def _fields(cache: SchemaCache, message: Message, compress_above: int) -> list[bytes]:
    schema_id = cache.cached_id(message.DESCRIPTOR)
    if schema_id is None:
        raise LookupError(message.DESCRIPTOR.full_name)  # register it (I/O), then encode again
    return seal(schema_id, message.SerializeToString(), compress_above=compress_above)
