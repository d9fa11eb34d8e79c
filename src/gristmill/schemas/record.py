"""SchemaRecord: what the registry stores under a schema id, itself a protobuf message.

```proto
syntax = "proto3";
package gristmill.registry.v1;
message SchemaRecord {
  bytes file_set = 1;           // a serialized google.protobuf.FileDescriptorSet (wire-equal
                                // to a FileDescriptorSet field); dependencies included,
                                // well-known types left out
  string message_name = 2;      // full name of the root message, no leading dot
  string subject = 3;           // subject of the first registration of this id
  uint32 version = 4;           // its version in that subject (1, 2, ...)
  int64 created_at_ms = 5;      // Unix epoch milliseconds of that registration
  bytes canonical_sha256 = 6;   // SHA-256 of the canonical form (the id is its first 12 bytes)
  uint32 canonical_version = 7; // version of the canonical form (1)
}
```
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from google.protobuf.message import DecodeError as ProtobufDecodeError

from gristmill.errors import InvalidSchema
from gristmill.schemas.ids import CANONICAL_VERSION, canonical_digest, id_of_digest

if TYPE_CHECKING:
    from google.protobuf.message import Message

# Far above any real service schema (Person with its imports is ~1 KB), far below the 2.6 MB
# schema that cost 0.5 s and 74 MB to load.
MAX_RECORD_BYTES = 1 << 20

_FDP = descriptor_pb2.FieldDescriptorProto


def _record_class() -> type[Message]:
    file = descriptor_pb2.FileDescriptorProto(
        name="gristmill/registry/v1/record.proto", package="gristmill.registry.v1", syntax="proto3"
    )
    message = file.message_type.add(name="SchemaRecord")
    for number, (name, kind) in enumerate(
        [
            ("file_set", _FDP.TYPE_BYTES),
            ("message_name", _FDP.TYPE_STRING),
            ("subject", _FDP.TYPE_STRING),
            ("version", _FDP.TYPE_UINT32),
            ("created_at_ms", _FDP.TYPE_INT64),
            ("canonical_sha256", _FDP.TYPE_BYTES),
            ("canonical_version", _FDP.TYPE_UINT32),
        ],
        start=1,
    ):
        message.field.add(name=name, number=number, type=kind, label=_FDP.LABEL_OPTIONAL)
    pool = descriptor_pool.DescriptorPool()  # never the default pool: user code owns that one
    pool.Add(file)
    return message_factory.GetMessageClass(
        pool.FindMessageTypeByName("gristmill.registry.v1.SchemaRecord")
    )


_RecordMessage: Any = _record_class()


@dataclass(frozen=True)
class SchemaRecord:
    """A registered schema: the files that define a message, and where it was registered."""

    schema_id: str
    file_set: descriptor_pb2.FileDescriptorSet
    message_name: str
    subject: str
    version: int
    created_at_ms: int
    canonical_sha256: bytes

    @classmethod
    def create(
        cls,
        file_set: descriptor_pb2.FileDescriptorSet,
        message_name: str,
        subject: str,
        version: int,
        created_at_ms: int,
    ) -> SchemaRecord:
        """A record for `message_name` in `file_set`, with its id and digest computed.

        Raises:
            InvalidSchema: If the schema cannot be described canonically.
        """
        digest = canonical_digest(file_set, message_name)
        return cls(
            id_of_digest(digest), file_set, message_name, subject, version, created_at_ms, digest
        )

    def to_bytes(self) -> bytes:
        """The record as stored in the registry hash.

        Raises:
            InvalidSchema: If the encoded record is larger than `MAX_RECORD_BYTES`.
        """
        data: bytes = _RecordMessage(
            file_set=self.file_set.SerializeToString(),
            message_name=self.message_name,
            subject=self.subject,
            version=self.version,
            created_at_ms=self.created_at_ms,
            canonical_sha256=self.canonical_sha256,
            canonical_version=CANONICAL_VERSION,
        ).SerializeToString()
        if len(data) > MAX_RECORD_BYTES:
            raise InvalidSchema(
                f"schema record of {self.message_name} is {len(data)} bytes; "
                f"the limit is {MAX_RECORD_BYTES}"
            )
        return data

    @classmethod
    def from_bytes(cls, schema_id: str, data: bytes) -> SchemaRecord:
        """Parse a stored record and check that its content hashes to `schema_id`.

        Raises:
            InvalidSchema: If the record is too large, does not parse, uses an unknown
                canonical version, or does not match `schema_id`.
        """
        if len(data) > MAX_RECORD_BYTES:
            raise InvalidSchema(
                f"record {schema_id} is {len(data)} bytes; limit {MAX_RECORD_BYTES}"
            )
        try:
            raw = _RecordMessage.FromString(data)
            file_set = descriptor_pb2.FileDescriptorSet.FromString(raw.file_set)
        except ProtobufDecodeError as exc:
            raise InvalidSchema(f"record {schema_id} does not parse: {exc}") from None
        if raw.canonical_version != CANONICAL_VERSION:
            raise InvalidSchema(
                f"record {schema_id} uses canonical form {raw.canonical_version}; "
                f"this gristmill knows {CANONICAL_VERSION}"
            )
        record = cls.create(file_set, raw.message_name, raw.subject, raw.version, raw.created_at_ms)
        # content addressing is what makes a cached class safe to reuse forever: refuse a
        # record whose content is not what its id promises (a collision or a tampered write)
        if record.schema_id != schema_id or record.canonical_sha256 != raw.canonical_sha256:
            raise InvalidSchema(f"record {schema_id} does not hash to its id")
        return record
