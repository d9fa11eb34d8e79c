"""The per-process schema cache: schema id -> message class, and descriptor -> schema id.

`get` and `cached_id` are plain dict lookups, because the hot path calls them for every entry.
`resolve` fetches a missing id from the registry once, however many tasks ask at the same
time (single flight), builds its class in a pool of its own, and remembers it; ids that have
no record, or a record that does not build, are remembered for `negative_ttl` seconds so a
stream full of them costs one fetch per interval, not one per entry. A remembered miss is also
forgotten as soon as a schema is registered anywhere: the registration script counts new
records in an epoch key, each miss notes the epoch read just before it, and the pipeline asks
`recheck_misses` once per batch that meets one (one GET), so an entry written just after its
schema's registration is never refused as `unknown_schema`.

Schema ids are content hashes, so a cached class never goes stale; the bound on entries exists
for processes that meet many schemas, and bounds remembered failures the same way, so a
stream of made-up ids cannot grow the process. Eviction is oldest-resolved first (insertion order),
which keeps `get` free of bookkeeping; an evicted id that is still in use is fetched again once.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Generic, TypeVar, cast

import anyio
from google.protobuf import message_factory

from gristmill.clock import SYSTEM_CLOCK
from gristmill.errors import SchemaError, SchemaNotFound
from gristmill.schemas.descriptors import message_class

if TYPE_CHECKING:
    from collections.abc import Iterable

    from google.protobuf.descriptor import Descriptor
    from google.protobuf.message import Message

    from gristmill.clock import Clock
    from gristmill.schemas.descriptors import MessageDescriptor
    from gristmill.schemas.registry import SchemaRegistry

log = logging.getLogger(__name__)

_T = TypeVar("_T")


class _Flight(Generic[_T]):
    """One fetch in progress; latecomers wait for its outcome instead of fetching again."""

    def __init__(self) -> None:
        self.done = anyio.Event()
        self.result: _T | None = None
        self.error: Exception | None = None


class SchemaCache:
    """Message classes by schema id, fetched from a registry once per id and process."""

    def __init__(
        self,
        registry: SchemaRegistry,
        *,
        max_entries: int = 1024,
        negative_ttl: float = 5.0,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        if max_entries < 1:
            raise ValueError("max_entries must be 1 or more")
        self.registry = registry
        self.max_entries = max_entries
        self.negative_ttl_ms = round(negative_ttl * 1000)
        self.clock = clock
        self.hits = 0
        self.misses = 0
        self.fetches = 0
        self.evictions = 0
        self.rechecks = 0
        self._classes: dict[bytes, type[Message]] = {}
        # id -> (expires_ms, error, registration epoch before the miss; None: never recheck)
        self._failures: dict[bytes, tuple[int, SchemaError, int | None]] = {}
        self._ids: dict[MessageDescriptor, bytes] = {}
        self._resolving: dict[bytes, _Flight[type[Message]]] = {}
        self._registering: dict[MessageDescriptor, _Flight[bytes]] = {}

    def get(self, schema_id: bytes) -> type[Message] | None:
        """The class of `schema_id` if this process already resolved it; never does I/O."""
        found = self._classes.get(schema_id)
        if found is None:
            self.misses += 1
        else:
            self.hits += 1
        return found

    async def resolve(self, schema_id: bytes) -> type[Message]:
        """The class of `schema_id`, fetched and built on first use.

        Raises:
            SchemaNotFound: If the registry has no record under `schema_id` (reason
                `unknown_schema`); remembered for `negative_ttl` seconds.
            InvalidSchema: If the record does not parse, build or match its id.
        """
        while True:
            found = self._classes.get(schema_id)
            if found is not None:
                return found
            failure = self._failures.get(schema_id)
            if failure is not None:
                if failure[0] > self.clock.now_ms():
                    raise failure[1]
                del self._failures[schema_id]
            flight = self._resolving.get(schema_id)
            if flight is None:
                return await self._fetch(schema_id)
            await flight.done.wait()
            if flight.error is not None:
                raise flight.error
            if flight.result is not None:
                return flight.result
            # the fetching task was cancelled: loop, and one of the waiters fetches instead

    async def _fetch(self, schema_id: bytes) -> type[Message]:
        flight: _Flight[type[Message]] = _Flight()
        self._resolving[schema_id] = flight
        try:
            self.fetches += 1
            epoch: int | None = None
            try:
                text = schema_id.decode("ascii", "replace")
                record, epoch = await self.registry.fetch_with_epoch(text)
                if record is None:
                    raise SchemaNotFound(f"no schema registered under {schema_id[:64]!r}")
                built = message_class(record.file_set, record.message_name)
            except SchemaError as exc:
                flight.error = exc
                missing = isinstance(exc, SchemaNotFound)  # a broken record stays broken
                self._remember_failure(schema_id, exc, epoch if missing else None)
                log.warning(
                    "schema %r unusable: %s", schema_id[:64], exc, extra={"reason": exc.reason}
                )
                raise
            except Exception as exc:
                # the server is unreachable, say: waiters share this outcome rather than each
                # retrying in turn, and nothing is remembered, so the next resolve tries again
                flight.error = exc
                raise
            self._remember(schema_id, built)
            flight.result = built
            return built
        finally:
            del self._resolving[schema_id]
            flight.done.set()

    def _remember(self, schema_id: bytes, built: type[Message]) -> None:
        while len(self._classes) >= self.max_entries:
            del self._classes[next(iter(self._classes))]
            self.evictions += 1
        self._classes[schema_id] = built

    def _remember_failure(self, schema_id: bytes, error: SchemaError, epoch: int | None) -> None:
        # bounded too: a stream of made-up ids must not grow the process; one ttl for all
        # means insertion order is expiry order, so the oldest entry goes first
        while len(self._failures) >= self.max_entries:
            del self._failures[next(iter(self._failures))]
        self._failures[schema_id] = (self.clock.now_ms() + self.negative_ttl_ms, error, epoch)

    async def recheck_misses(self, schema_ids: Iterable[bytes]) -> None:
        """Forget the remembered misses among `schema_ids` if a schema was registered since.

        One GET of the registration epoch, and only when one of them is a remembered miss; the
        next `resolve` of a forgotten one fetches it again.
        """
        noted: dict[bytes, int] = {}  # remembered misses -> the epoch before each
        for schema_id in schema_ids:
            failure = self._failures.get(schema_id)
            if failure is not None and failure[2] is not None:
                noted[schema_id] = failure[2]
        if not noted:
            return
        self.rechecks += 1
        epoch = await self.registry.epoch()
        for schema_id, seen in noted.items():
            if seen < epoch:
                self._failures.pop(schema_id, None)

    def cached_id(self, descriptor: MessageDescriptor) -> bytes | None:
        """The schema id of `descriptor` if this process registered it already; never does I/O."""
        return self._ids.get(descriptor)

    async def id_for(self, descriptor: MessageDescriptor) -> bytes:
        """The schema id of `descriptor`, registered once per process (single flight).

        Raises:
            InvalidSchema: If the schema cannot be described or passes a limit.
            IncompatibleSchema: If it breaks its subject's compatibility mode.
        """
        while True:
            found = self._ids.get(descriptor)
            if found is not None:
                return found
            flight = self._registering.get(descriptor)
            if flight is None:
                return await self._register(descriptor)
            await flight.done.wait()
            if flight.error is not None:
                raise flight.error
            if flight.result is not None:
                return flight.result

    async def _register(self, descriptor: MessageDescriptor) -> bytes:
        flight: _Flight[bytes] = _Flight()
        self._registering[descriptor] = flight
        try:
            try:
                registered = await self.registry.register(descriptor)
            except Exception as exc:  # waiters share it; a cancelled registration they retry
                flight.error = exc
                raise
            schema_id = registered.schema_id.encode("ascii")
            self._ids[descriptor] = schema_id
            # this process knows the type, so it reads it with its own class, no fetch: a
            # handler then gets the service's class, whose sub-messages (a Timestamp, say)
            # copy into the service's other messages; a class built from the registry lives
            # in a pool of its own, and protobuf refuses CopyFrom across pools
            local = message_factory.GetMessageClass(cast("Descriptor", descriptor))
            if schema_id in self._classes:
                self._classes[schema_id] = local
            else:
                self._remember(schema_id, local)
            flight.result = schema_id
            return schema_id
        finally:
            del self._registering[descriptor]
            flight.done.set()

    def stats(self) -> dict[str, int]:
        """Counters for metrics and `runtime status`."""
        return {
            "hits": self.hits,
            "misses": self.misses,
            "fetches": self.fetches,
            "evictions": self.evictions,
            "entries": len(self._classes),
            "negative_entries": len(self._failures),
            "rechecks": self.rechecks,
        }
