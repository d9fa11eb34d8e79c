"""An AsyncAPI 3.0 document of apps, from their declarations (pure: no I/O here).

Channels are streams, operations are processors (receive from inputs, send to outputs),
messages are the protobuf types known to flow on each stream, with a JSON Schema of their
fields. A stream's types come from its handler's annotation when it names a message class,
and from `observed` (stream -> message descriptors seen on it, e.g. read from the server).
"""

from __future__ import annotations

import inspect
from typing import TYPE_CHECKING, Any

from google.protobuf.descriptor import Descriptor, FieldDescriptor

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from gristmill.app import App
    from gristmill.specs import ProcessorSpec

PROTOBUF_FORMAT = "application/vnd.google.protobuf;version=3"
_SCALARS = {
    FieldDescriptor.TYPE_DOUBLE: {"type": "number"}, FieldDescriptor.TYPE_FLOAT: {"type": "number"},
    FieldDescriptor.TYPE_BOOL: {"type": "boolean"}, FieldDescriptor.TYPE_STRING: {"type": "string"},
    FieldDescriptor.TYPE_BYTES: {"type": "string", "contentEncoding": "base64"},
}  # fmt: skip
_INT64 = {FieldDescriptor.TYPE_INT64, FieldDescriptor.TYPE_UINT64, FieldDescriptor.TYPE_SINT64,
          FieldDescriptor.TYPE_FIXED64, FieldDescriptor.TYPE_SFIXED64}  # fmt: skip


def _key(full_name: str) -> str:
    return full_name.replace(".", "_")


def input_type(spec: ProcessorSpec) -> Descriptor | None:
    """The message type a handler's first parameter is annotated with, if it names one."""
    try:
        parameters = list(inspect.signature(spec.handler).parameters.values())
    except (TypeError, ValueError):
        return None
    annotation = parameters[0].annotation if parameters else None
    descriptor = getattr(annotation, "DESCRIPTOR", None)
    return descriptor if isinstance(descriptor, Descriptor) else None


def json_schema(descriptor: Descriptor, schemas: dict[str, Any]) -> dict[str, Any]:
    """A JSON Schema of `descriptor` (protobuf's JSON mapping); nested types go in `schemas`."""
    properties: dict[str, Any] = {}
    for field in descriptor.fields:
        if field.type == FieldDescriptor.TYPE_MESSAGE and field.message_type is not None:
            nested = field.message_type
            if _key(nested.full_name) not in schemas:
                schemas[_key(nested.full_name)] = {}  # placeholder: recursive types terminate
                schemas[_key(nested.full_name)] = json_schema(nested, schemas)
            value: dict[str, Any] = {"$ref": f"#/components/schemas/{_key(nested.full_name)}"}
        elif field.type == FieldDescriptor.TYPE_ENUM and field.enum_type is not None:
            value = {"type": "string", "enum": [v.name for v in field.enum_type.values]}
        elif field.type in _INT64:
            value = {"type": "string", "format": "int64"}  # the JSON mapping quotes 64-bit ints
        else:
            value = dict(_SCALARS.get(field.type, {"type": "integer"}))
        repeated = field.is_repeated
        properties[field.json_name] = {"type": "array", "items": value} if repeated else value
    return {"type": "object", "title": descriptor.full_name, "properties": properties}


def document(
    apps: Sequence[App],
    observed: Mapping[str, Sequence[Descriptor]] | None = None,
    *,
    title: str = "gristmill pipeline",
    version: str = "1.0.0",
) -> dict[str, Any]:
    """The AsyncAPI 3.0 document of `apps` as a plain dict (dump it as JSON)."""
    types: dict[str, dict[str, Descriptor]] = {}  # stream -> full name -> descriptor
    for stream, descriptors in (observed or {}).items():
        for descriptor in descriptors:
            types.setdefault(stream, {})[descriptor.full_name] = descriptor
    specs = [spec for app in apps for spec in app.processors.values()]
    for spec in specs:
        annotated = input_type(spec)
        if annotated is None:
            continue
        for stream in spec.inputs:
            types.setdefault(stream, {})[annotated.full_name] = annotated
    streams = sorted(
        {s for spec in specs for s in (*spec.inputs, *spec.outputs, *spec.side_outputs)}
    )
    schemas: dict[str, Any] = {}
    messages: dict[str, Any] = {}
    channels: dict[str, Any] = {}
    for stream in streams:
        channel_messages = {}
        for full_name, descriptor in sorted(types.get(stream, {}).items()):
            key = _key(full_name)
            if key not in messages:
                if key not in schemas:
                    schemas[key] = json_schema(descriptor, schemas)
                messages[key] = {
                    "name": full_name, "title": descriptor.name, "contentType": PROTOBUF_FORMAT,
                    "payload": {"$ref": f"#/components/schemas/{key}"},
                }  # fmt: skip
            channel_messages[key] = {"$ref": f"#/components/messages/{key}"}
        channels[_key(stream)] = {
            "address": stream,
            "description": f"Redis stream `{stream}`",
            "messages": channel_messages,
        }
    operations: dict[str, Any] = {}
    for spec in specs:
        for action, targets in (
            ("receive", spec.inputs),
            ("send", spec.outputs + spec.side_outputs),
        ):
            for stream in targets:
                operations[f"{_key(spec.group)}__{action}__{_key(stream)}"] = {
                    "action": action,
                    "channel": {"$ref": f"#/channels/{_key(stream)}"},
                    "summary": f"{spec.app}.{spec.name} {action}s on {stream} (group {spec.group})",
                }
    return {
        "asyncapi": "3.0.0",
        "info": {
            "title": title,
            "version": version,
            "description": ", ".join(a.name for a in apps),
        },
        "defaultContentType": PROTOBUF_FORMAT,
        "channels": channels,
        "operations": operations,
        "components": {"messages": messages, "schemas": schemas},
    }
