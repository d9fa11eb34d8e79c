"""The schema registry in Redis: records by id, and each subject's versions and mode.

Keys (all from `gristmill.keys`): `schemas` hash id -> SchemaRecord bytes; `subject:<name>`
list of ids, oldest first; `compat:<name>` the subject's compatibility mode; `subjects` set.
Registration is one Lua script, so two processes registering at once make one version.
"""

from __future__ import annotations

import dataclasses
import logging
from typing import TYPE_CHECKING

from gristmill import keys
from gristmill.clock import SYSTEM_CLOCK
from gristmill.errors import IncompatibleSchema, InvalidSchema, SchemaError, SchemaNotFound
from gristmill.schemas.compat import DEFAULT_MODE, Mode, check_compatible
from gristmill.schemas.descriptors import check_limits, file_set_of
from gristmill.schemas.ids import looks_like_schema_id
from gristmill.schemas.record import SchemaRecord
from gristmill.scripts import load

if TYPE_CHECKING:
    from google.protobuf import descriptor_pb2
    from redis.asyncio import Redis

    from gristmill.clock import Clock
    from gristmill.schemas.descriptors import MessageDescriptor

log = logging.getLogger(__name__)

MAX_SUBJECT_LENGTH = 255
# each retry means another process added a version of the same subject in between
_MAX_REGISTER_ATTEMPTS = 16


@dataclasses.dataclass(frozen=True)
class RegisteredSchema:
    """Where a schema stands in a subject: its id and version there."""

    schema_id: str
    subject: str
    version: int


def _check_subject(subject: str) -> None:
    if not subject or len(subject) > MAX_SUBJECT_LENGTH:
        raise InvalidSchema(f"subject must have 1 to {MAX_SUBJECT_LENGTH} characters")
    if any(ord(char) < 0x20 or char == "\x7f" for char in subject):
        raise InvalidSchema(f"subject {subject!r} contains a control character")


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _refuse_collision(record: SchemaRecord, stored: SchemaRecord) -> None:
    if stored.canonical_sha256 != record.canonical_sha256:
        raise InvalidSchema(
            f"schema id {record.schema_id} of {record.message_name} is taken by a different "
            f"schema ({stored.message_name}); rename a field or type and register again"
        )


class SchemaRegistry:
    """Schemas stored in Redis, by content id and by subject."""

    def __init__(
        self, redis: Redis, prefix: str = keys.DEFAULT_PREFIX, *, clock: Clock = SYSTEM_CLOCK
    ) -> None:
        self.redis = redis
        self.prefix = prefix
        self.clock = clock
        self.fetches = 0  # round trips made by fetch(); the decode cache promises one per id

    async def register(
        self, descriptor: MessageDescriptor, subject: str | None = None
    ) -> RegisteredSchema:
        """Register the message type `descriptor` under `subject` (default: its full name).

        The same content registered again, from any process, returns the same id and version.

        Raises:
            InvalidSchema: If the schema passes a limit or cannot be described.
            IncompatibleSchema: If it breaks the subject's compatibility mode.
        """
        return await self.register_file_set(file_set_of(descriptor), descriptor.full_name, subject)

    async def check(self, descriptor: MessageDescriptor, subject: str | None = None) -> None:
        """Raise what `register` would raise for `descriptor` now, and write nothing.

        A start that checks every schema first and then registers them registers none when
        one is refused.

        Raises:
            InvalidSchema: If the schema passes a limit or cannot be described.
            IncompatibleSchema: If it breaks the subject's compatibility mode.
        """
        file_set = file_set_of(descriptor)
        subject = descriptor.full_name if subject is None else subject
        _check_subject(subject)
        check_limits(file_set)
        record = SchemaRecord.create(
            file_set, descriptor.full_name, subject, 0, self.clock.now_ms()
        )
        versions_key = keys.subject_versions(subject, self.prefix)
        ids = [_text(value) for value in await self.redis.lrange(versions_key, 0, -1)]
        if record.schema_id not in ids:
            await self._check_compatible(subject, ids, record)

    async def register_file_set(
        self,
        file_set: descriptor_pb2.FileDescriptorSet,
        message_name: str,
        subject: str | None = None,
    ) -> RegisteredSchema:
        """Like `register`, for a message given as a FileDescriptorSet and its full name."""
        message_name = message_name.removeprefix(".")
        subject = message_name if subject is None else subject
        _check_subject(subject)
        check_limits(file_set)
        record = SchemaRecord.create(file_set, message_name, subject, 0, self.clock.now_ms())
        versions_key = keys.subject_versions(subject, self.prefix)
        for _ in range(_MAX_REGISTER_ATTEMPTS):
            ids = [_text(value) for value in await self.redis.lrange(versions_key, 0, -1)]
            if record.schema_id in ids:
                return RegisteredSchema(record.schema_id, subject, ids.index(record.schema_id) + 1)
            await self._check_compatible(subject, ids, record)
            existing = await self._stored(record.schema_id)
            if existing is not None:
                _refuse_collision(record, existing)
            candidate = dataclasses.replace(record, version=len(ids) + 1)
            status, version, stored = await load("register_schema")(
                self.redis,
                [
                    keys.schemas(self.prefix),
                    versions_key,
                    keys.subjects(self.prefix),
                    keys.schemas_epoch(self.prefix),
                ],
                [candidate.schema_id, candidate.to_bytes(), len(ids) + 1, subject],
            )
            if _text(status) == "stale":
                continue  # another version arrived after our check: check against it too
            if stored:
                _refuse_collision(candidate, SchemaRecord.from_bytes(candidate.schema_id, stored))
            if _text(status) == "added":
                log.info(
                    "registered schema %s as version %d of %s",
                    candidate.schema_id,
                    version,
                    subject,
                    extra={"schema_id": candidate.schema_id, "subject": subject},
                )
            return RegisteredSchema(candidate.schema_id, subject, int(version))
        raise SchemaError(f"subject {subject} kept changing while registering; try again")

    async def _check_compatible(self, subject: str, ids: list[str], record: SchemaRecord) -> None:
        if not ids:
            return
        mode = await self.compatibility(subject)
        if mode is Mode.NONE:
            return
        previous_ids = ids if mode.transitive else ids[-1:]
        previous = []
        for schema_id in previous_ids:
            found = await self.fetch(schema_id)
            if found is None:
                raise SchemaNotFound(f"subject {subject} lists {schema_id}, which has no record")
            previous.append(found)
        problems = check_compatible(
            mode,
            record.file_set,
            record.message_name,
            [(p.file_set, p.message_name) for p in previous],
        )
        if problems:
            raise IncompatibleSchema(
                f"{record.message_name} is not {mode.value}-compatible with subject {subject}: "
                + "; ".join(problems)
            )

    async def fetch(self, schema_id: str) -> SchemaRecord | None:
        """The record stored under `schema_id`, or None if there is none.

        Raises:
            InvalidSchema: If the stored record is too large, does not parse, or does not hash
                to `schema_id`.
        """
        if not looks_like_schema_id(schema_id):
            return None  # not an id we could have issued: no round trip
        self.fetches += 1
        return await self._stored(schema_id)

    async def fetch_with_epoch(self, schema_id: str) -> tuple[SchemaRecord | None, int | None]:
        """`fetch`, and the registration epoch read just before it in the same round trip.

        A later `epoch()` than the one returned with None means a record was added since, so
        the miss may be one no longer. The epoch is None for a string that is no id at all.

        Raises:
            InvalidSchema: As `fetch`.
        """
        if not looks_like_schema_id(schema_id):
            return None, None
        self.fetches += 1
        pipe = self.redis.pipeline(transaction=False)
        pipe.get(keys.schemas_epoch(self.prefix))  # first: a record added after it is newer
        pipe.hget(keys.schemas(self.prefix), schema_id)
        epoch, data = await pipe.execute()
        return self._record(schema_id, data), int(epoch or 0)

    async def epoch(self) -> int:
        """How many records were ever added (`register_schema.lua` counts them)."""
        return int(await self.redis.get(keys.schemas_epoch(self.prefix)) or 0)

    async def _stored(self, schema_id: str) -> SchemaRecord | None:
        return self._record(schema_id, await self.redis.hget(keys.schemas(self.prefix), schema_id))

    @staticmethod
    def _record(schema_id: str, data: bytes | str | None) -> SchemaRecord | None:
        if data is None:
            return None
        if isinstance(data, str):
            raise InvalidSchema("the registry needs a client with decode_responses=False")
        return SchemaRecord.from_bytes(schema_id, data)

    async def subjects(self) -> list[str]:
        """Every subject name, sorted."""
        return sorted(_text(name) for name in await self.redis.smembers(keys.subjects(self.prefix)))

    async def versions(self, subject: str) -> list[str]:
        """The schema ids of `subject`, oldest first (version n at index n - 1)."""
        values = await self.redis.lrange(keys.subject_versions(subject, self.prefix), 0, -1)
        return [_text(value) for value in values]

    async def version(self, subject: str, version: int | None = None) -> SchemaRecord:
        """Version `version` of `subject` (default: the latest).

        Raises:
            SchemaNotFound: If the subject or that version does not exist.
        """
        ids = await self.versions(subject)
        if not ids:
            raise SchemaNotFound(f"no subject {subject!r}")
        number = len(ids) if version is None else version
        if not 1 <= number <= len(ids):
            raise SchemaNotFound(f"subject {subject!r} has versions 1 to {len(ids)}")
        record = await self.fetch(ids[number - 1])
        if record is None:
            raise SchemaNotFound(f"subject {subject!r} lists {ids[number - 1]} without a record")
        return record

    async def compatibility(self, subject: str) -> Mode:
        """The compatibility mode of `subject` (BACKWARD unless set)."""
        value = await self.redis.get(keys.subject_compatibility(subject, self.prefix))
        if value is None:
            return DEFAULT_MODE
        try:
            return Mode(_text(value))
        except ValueError:
            raise SchemaError(f"subject {subject!r} has an unknown mode {value!r}") from None

    async def set_compatibility(self, subject: str, mode: Mode) -> None:
        """Set the compatibility mode that new versions of `subject` must satisfy."""
        _check_subject(subject)
        await self.redis.set(keys.subject_compatibility(subject, self.prefix), mode.value)
