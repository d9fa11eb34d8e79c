"""The well-known types: every protobuf runtime ships them, so records never carry them.

A schema that imports `google/protobuf/timestamp.proto` names `google.protobuf.Timestamp` and
nothing more; each decoder seeds its pools with its own runtime's copy of these files.
"""

from __future__ import annotations

from types import MappingProxyType
from typing import TYPE_CHECKING

from google.protobuf import (
    any_pb2,
    api_pb2,
    descriptor_pb2,
    duration_pb2,
    empty_pb2,
    field_mask_pb2,
    source_context_pb2,
    struct_pb2,
    timestamp_pb2,
    type_pb2,
    wrappers_pb2,
)

if TYPE_CHECKING:
    from collections.abc import Iterator, Mapping

    from google.protobuf.descriptor import Descriptor, EnumDescriptor, FileDescriptor

# file name -> the runtime's own FileDescriptor of it
WELL_KNOWN_FILES: Mapping[str, FileDescriptor] = MappingProxyType(
    {
        module.DESCRIPTOR.name: module.DESCRIPTOR
        for module in (
            any_pb2,
            api_pb2,
            descriptor_pb2,
            duration_pb2,
            empty_pb2,
            field_mask_pb2,
            source_context_pb2,
            struct_pb2,
            timestamp_pb2,
            type_pb2,
            wrappers_pb2,
        )
    }
)


def _nested_names(message: Descriptor) -> Iterator[str]:
    yield message.full_name
    for enum in message.enum_types:
        yield enum.full_name
    for nested in message.nested_types:
        yield from _nested_names(nested)


def _type_names(file: FileDescriptor) -> Iterator[str]:
    enum: EnumDescriptor
    for enum in file.enum_types_by_name.values():
        yield enum.full_name
    for message in file.message_types_by_name.values():
        yield from _nested_names(message)


# every message and enum full name defined by a well-known file (no leading dot)
WELL_KNOWN_TYPES: frozenset[str] = frozenset(
    name for file in WELL_KNOWN_FILES.values() for name in _type_names(file)
)


def is_well_known_file(name: str) -> bool:
    """True if `name` (e.g. `google/protobuf/timestamp.proto`) is a well-known file."""
    return name in WELL_KNOWN_FILES
