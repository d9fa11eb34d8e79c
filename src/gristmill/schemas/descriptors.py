"""Descriptors to FileDescriptorSets and back: one private DescriptorPool per schema.

A pool cannot hold two versions of one file name, and the default pool belongs to whatever
generated code the process imported, so every schema id gets a pool of its own, seeded with
this runtime's well-known types. Every failure of the protobuf runtime while building
(`TypeError`, `ValueError`, `KeyError`) becomes our `InvalidSchema` with the file named.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, cast

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

from gristmill.errors import InvalidSchema
from gristmill.schemas.wellknown import WELL_KNOWN_FILES, is_well_known_file

if TYPE_CHECKING:
    from google._upb._message import Descriptor as UpbDescriptor
    from google._upb._message import FileDescriptor as UpbFileDescriptor
    from google.protobuf.descriptor import Descriptor, FileDescriptor
    from google.protobuf.descriptor_pool import DescriptorPool
    from google.protobuf.message import Message

    # what `Message.DESCRIPTOR` is typed as: the stubs name both implementations
    MessageDescriptor = Descriptor | UpbDescriptor

# A 2.6 MB schema took 0.5 s and 74 MB to load in Python (docs/wire-format.md); these bounds keep one hostile or
# mistaken record to a few milliseconds and megabytes in every consumer that meets it.
MAX_FILES = 64
MAX_TYPES = 2_000
MAX_FIELDS = 20_000


def _with_dependencies(
    file: FileDescriptor | UpbFileDescriptor,
    seen: dict[str, FileDescriptor | UpbFileDescriptor],
) -> None:
    if file.name in seen:
        return
    for dependency in file.dependencies:
        _with_dependencies(dependency, seen)
    seen[file.name] = file  # dependencies first: a pool adds a file only after its imports


def file_set_of(descriptor: MessageDescriptor) -> descriptor_pb2.FileDescriptorSet:
    """The files that define `descriptor`, dependencies first, without the well-known types."""
    files: dict[str, FileDescriptor | UpbFileDescriptor] = {}
    _with_dependencies(descriptor.file, files)
    file_set = descriptor_pb2.FileDescriptorSet()
    for name, file in files.items():
        if not is_well_known_file(name):
            # upb keeps the resolved form: type names fully qualified, enum vs message decided
            file_set.file.append(descriptor_pb2.FileDescriptorProto.FromString(file.serialized_pb))
    return file_set


def _count(message: descriptor_pb2.DescriptorProto) -> tuple[int, int]:
    types, fields = 1 + len(message.enum_type), len(message.field)
    for nested in message.nested_type:
        nested_types, nested_fields = _count(nested)
        types, fields = types + nested_types, fields + nested_fields
    return types, fields


def check_limits(file_set: descriptor_pb2.FileDescriptorSet) -> None:
    """Refuse a file set with more files, types or fields than a consumer should build.

    Raises:
        InvalidSchema: If a count passes its limit (the message names the limit).
    """
    if len(file_set.file) > MAX_FILES:
        raise InvalidSchema(f"schema has {len(file_set.file)} files; the limit is {MAX_FILES}")
    types = fields = 0
    for file in file_set.file:
        types += len(file.enum_type)
        for message in file.message_type:
            message_types, message_fields = _count(message)
            types, fields = types + message_types, fields + message_fields
    if types > MAX_TYPES:
        raise InvalidSchema(f"schema has {types} messages and enums; the limit is {MAX_TYPES}")
    if fields > MAX_FIELDS:
        raise InvalidSchema(f"schema has {fields} fields; the limit is {MAX_FIELDS}")


def _add_well_known(pool: descriptor_pool.DescriptorPool, name: str, added: set[str]) -> None:
    if name in added:
        return
    file = WELL_KNOWN_FILES[name]
    for dependency in file.dependencies:
        _add_well_known(pool, dependency.name, added)
    pool.AddSerializedFile(file.serialized_pb)
    added.add(name)


def new_pool(file_set: descriptor_pb2.FileDescriptorSet) -> descriptor_pool.DescriptorPool:
    """A fresh pool holding `file_set`, with the well-known types it imports from this runtime.

    Files may come in any order; each is added after its imports.

    Raises:
        InvalidSchema: If a limit is passed, an import is missing, a symbol or file name is
            duplicated, or the protobuf runtime refuses a file for any other reason.
    """
    check_limits(file_set)
    pool = descriptor_pool.DescriptorPool()
    added: set[str] = set()
    waiting = [file for file in file_set.file if not is_well_known_file(file.name)]
    names = [file.name for file in waiting]
    if len(set(names)) != len(names):
        raise InvalidSchema("schema repeats a file name")
    while waiting:
        ready = [
            f for f in waiting if all(d in added or is_well_known_file(d) for d in f.dependency)
        ]
        if not ready:
            missing = sorted({d for f in waiting for d in f.dependency} - added - set(names))
            raise InvalidSchema(
                f"schema files import {', '.join(missing) or 'each other in a cycle'}, "
                "which the record does not carry"
            )
        for file in ready:
            try:
                for dependency in file.dependency:
                    if is_well_known_file(dependency):
                        _add_well_known(pool, dependency, added)
                pool.Add(file)
            except (TypeError, ValueError, KeyError) as exc:
                raise InvalidSchema(f"{file.name}: the protobuf runtime refused it: {exc}") from exc
            added.add(file.name)
        waiting = [f for f in waiting if f.name not in added]
    return pool


def message_class(file_set: descriptor_pb2.FileDescriptorSet, message_name: str) -> type[Message]:
    """The class of `message_name`, built in a pool of its own from `file_set`.

    Raises:
        InvalidSchema: If the files do not build or do not define the message.
    """
    pool = new_pool(file_set)
    try:
        try:
            descriptor = pool.FindMessageTypeByName(message_name)
        except KeyError:
            if message_name not in _WELL_KNOWN_ROOTS:
                raise
            # a well-known type as the root: its file comes from this runtime, not the record
            _add_well_known(pool, _WELL_KNOWN_ROOTS[message_name], set())
            descriptor = pool.FindMessageTypeByName(message_name)
        return message_factory.GetMessageClass(descriptor)
    except (TypeError, ValueError, KeyError) as exc:
        raise InvalidSchema(f"message {message_name} cannot be built: {exc}") from exc


_WELL_KNOWN_ROOTS = {
    message.full_name: file.name
    for file in WELL_KNOWN_FILES.values()
    for message in file.message_types_by_name.values()
}


@dataclass(frozen=True)
class BuiltSchema:
    """Message classes built from a FileDescriptorSet, in a pool of their own."""

    pool: DescriptorPool
    file_set: descriptor_pb2.FileDescriptorSet
    classes: dict[str, type[Message]] = field(default_factory=dict)

    def __getitem__(self, full_name: str) -> type[Message]:
        """The message class named `full_name` (e.g. `example.people.Person`)."""
        found = self.classes.get(full_name)
        if found is None:
            descriptor = cast("Descriptor", self.descriptor(full_name))
            found = self.classes[full_name] = message_factory.GetMessageClass(descriptor)
        return found

    def descriptor(self, full_name: str) -> MessageDescriptor:
        """The Descriptor of the message `full_name`."""
        try:
            return self.pool.FindMessageTypeByName(full_name)
        except KeyError:
            raise InvalidSchema(f"the schema files define no message {full_name}") from None

    def message_names(self, file_name: str | None = None) -> list[str]:
        """Full names of the top-level messages of `file_name` (default: of the last file,
        which is the one asked for: protoc and the builder put imports first)."""
        wanted = self.file_set.file[-1].name if file_name is None else file_name
        return [
            f"{file.package}.{message.name}" if file.package else message.name
            for file in self.file_set.file
            if file.name == wanted
            for message in file.message_type
        ]
