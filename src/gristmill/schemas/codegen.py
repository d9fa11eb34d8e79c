"""Typed stubs (.pyi) for registered schemas, so editors and mypy know the fields (pure).

Classes built at runtime are plain `Message` to a type checker. `runtime schemas codegen`
writes one stub module per protobuf package (`example.people` -> `example/people.pyi`) with a
class per message, nested as in the schema; point mypy's `mypy_path` at the output directory
and annotate handlers with those classes under `if TYPE_CHECKING:`. Enums become `int`
subclasses with their values as class attributes.
"""

from __future__ import annotations

import keyword
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from gristmill.schemas.ids import canonical_types
from gristmill.schemas.wellknown import WELL_KNOWN_FILES

if TYPE_CHECKING:
    from collections.abc import Iterable

    from google.protobuf import descriptor_pb2

_PYTHON_TYPES = {
    "double": "float", "float": "float", "int64": "int", "uint64": "int", "int32": "int",
    "fixed64": "int", "fixed32": "int", "bool": "bool", "string": "str", "bytes": "bytes",
    "uint32": "int", "sfixed32": "int", "sfixed64": "int", "sint32": "int", "sint64": "int",
    "enum": "int",
}  # fmt: skip
_WELL_KNOWN_MODULES = {
    message.full_name: (file.name.removesuffix(".proto").replace("/", ".") + "_pb2", message.name)
    for file in WELL_KNOWN_FILES.values()
    for message in file.message_types_by_name.values()
}
_HEADER = '''"""Typed stubs for gristmill schemas; written by `runtime schemas codegen`, do not edit."""

from collections.abc import Iterable, Mapping
from typing import ClassVar

from google.protobuf.internal.containers import (
    MessageMap,
    RepeatedCompositeFieldContainer,
    RepeatedScalarFieldContainer,
    ScalarMap,
)
from google.protobuf.message import Message
'''


@dataclass(frozen=True)
class StubSource:
    """One registered schema to write stubs for."""

    file_set: descriptor_pb2.FileDescriptorSet
    message_name: str
    subject: str
    version: int
    schema_id: str


def _packages(file_set: descriptor_pb2.FileDescriptorSet) -> dict[str, str]:
    """Full type name -> its file's package, for every message and enum of `file_set`."""
    found: dict[str, str] = {}

    def walk(scope: str, package: str, message: descriptor_pb2.DescriptorProto) -> None:
        name = f"{scope}.{message.name}" if scope else message.name
        found[name] = package
        for enum in message.enum_type:
            found[f"{name}.{enum.name}"] = package
        for nested in message.nested_type:
            walk(name, package, nested)

    for file in file_set.file:
        for enum in file.enum_type:
            found[f"{file.package}.{enum.name}" if file.package else enum.name] = file.package
        for message in file.message_type:
            walk(file.package, file.package, message)
    return found


class _Package:
    def __init__(self, name: str) -> None:
        self.name = name
        self.types: dict[str, dict[str, Any]] = {}  # full name -> canonical description
        self.imports: set[str] = set()
        self.origins: list[str] = []


def _relative(package: str, full_name: str) -> str:
    return full_name[len(package) + 1 :] if package else full_name


class _Renderer:
    def __init__(self, types: dict[str, dict[str, Any]], packages: dict[str, str]) -> None:
        self.types = types
        self.packages = packages

    def reference(self, into: _Package, full_name: str) -> str:
        if full_name in _WELL_KNOWN_MODULES:
            module, name = _WELL_KNOWN_MODULES[full_name]
            into.imports.add(f"from google.protobuf import {module.rsplit('.', 1)[-1]}")
            return f"{module.rsplit('.', 1)[-1]}.{name}"
        package = self.packages.get(full_name, "")
        if package == into.name:
            return _relative(package, full_name)
        into.imports.add(f"import {package}")
        return full_name

    def annotation(self, into: _Package, field: dict[str, Any]) -> tuple[str, bool]:
        """The field's type, and whether it is read-only (messages and containers are)."""
        if field["type"] in ("message", "group"):
            target = self.types.get(field["type_name"])
            if target is not None and target["map_entry"]:
                key, value = sorted(target["fields"], key=lambda f: f["number"])
                key_type = _PYTHON_TYPES[key["type"]]
                if value["type"] in ("message", "group"):
                    return (
                        f"MessageMap[{key_type}, {self.reference(into, value['type_name'])}]",
                        True,
                    )
                return f"ScalarMap[{key_type}, {_PYTHON_TYPES[value['type']]}]", True
            message = self.reference(into, field["type_name"])
            if field["label"] == "repeated":
                return f"RepeatedCompositeFieldContainer[{message}]", True
            return message, True
        scalar = _PYTHON_TYPES[field["type"]]
        if field["label"] == "repeated":
            return f"RepeatedScalarFieldContainer[{scalar}]", True
        return scalar, False

    def message(self, into: _Package, full_name: str, indent: str) -> list[str]:
        described = self.types[full_name]
        short = full_name.rsplit(".", 1)[-1]
        lines = [f"{indent}class {short}(Message):"]
        inner = indent + "    "
        for nested in self._children(full_name):
            lines.extend(self.render_type(into, nested, inner))
        arguments = []
        for field in described["fields"]:
            if keyword.iskeyword(field["name"]):
                lines.append(f"{inner}# {field['name']}: reach it with getattr (a Python keyword)")
                continue
            annotation, read_only = self.annotation(into, field)
            if read_only:
                lines.append(f"{inner}@property")
                lines.append(f"{inner}def {field['name']}(self) -> {annotation}: ...")
            else:
                lines.append(f"{inner}{field['name']}: {annotation}")
            arguments.append(f"{field['name']}: {self._argument(into, field, annotation)} = ...")
        init = ", ".join(["self", "*", *arguments]) if arguments else "self"
        lines.append(f"{inner}def __init__({init}) -> None: ...")
        return lines

    def _argument(self, into: _Package, field: dict[str, Any], annotation: str) -> str:
        if annotation.startswith(("MessageMap[", "ScalarMap[")):
            key_value = annotation[annotation.index("[") + 1 : -1]
            return f"Mapping[{key_value}] | None"
        if annotation.startswith("Repeated"):
            return f"Iterable[{annotation[annotation.index('[') + 1 : -1]}] | None"
        return f"{annotation} | None"

    def enum(self, full_name: str, indent: str) -> list[str]:
        short = full_name.rsplit(".", 1)[-1]
        lines = [f"{indent}class {short}(int):"]
        values = self.types[full_name]["values"]
        lines.extend(f"{indent}    {v['name']}: ClassVar[int]  # = {v['number']}" for v in values)
        return lines if values else [*lines, f"{indent}    ..."]

    def render_type(self, into: _Package, full_name: str, indent: str) -> list[str]:
        if self.types[full_name]["kind"] == "enum":
            return self.enum(full_name, indent)
        if self.types[full_name]["map_entry"]:
            return []  # maps are typed on their field
        return self.message(into, full_name, indent)

    def _children(self, full_name: str) -> list[str]:
        prefix = full_name + "."
        return sorted(
            name
            for name in self.types
            if name.startswith(prefix) and "." not in name[len(prefix) :]
        )


def render_stubs(sources: Iterable[StubSource]) -> dict[str, str]:
    """Stub modules for `sources`: relative path (`example/people.pyi`) -> text.

    Raises:
        InvalidSchema: If a schema cannot be described.
    """
    types: dict[str, dict[str, Any]] = {}
    packages: dict[str, str] = {}
    by_package: dict[str, _Package] = {}
    for source in sources:
        packages.update(_packages(source.file_set))
        for described in canonical_types(source.file_set, source.message_name):
            types.setdefault(described["name"], described)
        root_package = packages.get(source.message_name, "")
        by_package.setdefault(root_package, _Package(root_package)).origins.append(
            f"# {source.message_name}: subject {source.subject} v{source.version}, "
            f"schema_id {source.schema_id}"
        )
    for name in types:
        type_package = packages.get(name, "")
        by_package.setdefault(type_package, _Package(type_package))
    renderer = _Renderer(types, packages)
    rendered: dict[str, str] = {}
    for package_name, package in sorted(by_package.items()):
        top = sorted(
            name for name in types
            if packages.get(name, "") == package_name
            and "." not in _relative(package_name, name)
        )  # fmt: skip
        body: list[str] = []
        for name in top:
            body.extend(["", "", *renderer.render_type(package, name, "")])
        imports = sorted(package.imports - {f"import {package_name}"})
        head = [_HEADER.rstrip("\n"), *imports, "", *package.origins]
        text = "\n".join([*head, *body]) + "\n"
        path = (package_name.replace(".", "/") or "_root") + ".pyi"
        rendered[path] = text
    return rendered
