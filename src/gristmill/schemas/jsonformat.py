"""JSON in and out: protobuf's JSON mapping (json_format) for entries that carry JSON.

In: a processor declared with `input_format="json"` reads entries whose `payload` is a JSON
object (what a bridge writes, or any producer that cannot encode protobuf) and parses it into
its input type, taken from `input_type=` or from the handler's first parameter annotation.
Each way it can fail has a dead-letter reason of its own (failures/reasons.py):

    json_invalid        not UTF-8, not JSON, or not a JSON object at the top
    json_unknown_field  a key the type has no field for (unless `json_unknown_fields="ignore"`)
    json_type_mismatch  a value of the wrong JSON type or out of range for its field

Out: `to_json` renders a message as protobuf's canonical JSON (lowerCamelCase names, enums by
name, 64-bit integers as strings, well-known types in their special forms).

Pure: no I/O; the pipeline calls `json_input_of` once per processor and `parse_json` per entry.
"""

from __future__ import annotations

import inspect
import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, cast

from google.protobuf import descriptor_pool, json_format
from google.protobuf.message import Message

from gristmill.envelope import SCHEMA_ID
from gristmill.errors import ConfigError, DecodeError
from gristmill.failures import reasons

if TYPE_CHECKING:
    from gristmill.specs import ProcessorSpec

__all__ = ("JsonInput", "json_fields", "json_input_of", "parse_json", "to_json")

UnknownFields = Literal["reject", "ignore"]
FORMATS = ("protobuf", "json")


@dataclass
class JsonInput:
    """How one processor parses JSON entries."""

    message_class: type[Message]
    unknown_fields: UnknownFields = "reject"
    schema_id: bytes | None = field(default=None)  # set once registered (the pipeline does)


def json_input_of(spec: ProcessorSpec) -> JsonInput | None:
    """The processor's JSON input settings, or None for protobuf input (the default).

    Reads `input_format`, `input_type` and `json_unknown_fields` from the declaration.

    Raises:
        ConfigError: If the format is unknown, or no message type can be found for JSON.
    """
    input_format = spec.input_format
    if input_format not in FORMATS:
        raise ConfigError(
            f"processor {spec.name!r}: input_format={input_format!r}; expected one of {FORMATS}"
        )
    if input_format != "json":
        return None
    unknown = spec.json_unknown_fields
    if unknown not in ("reject", "ignore"):
        raise ConfigError(
            f"processor {spec.name!r}: json_unknown_fields={unknown!r}; expected reject or ignore"
        )
    message_class: Any = spec.input_class
    if message_class is None:
        message_class = annotated_input(spec.handler)
    if not (isinstance(message_class, type) and issubclass(message_class, Message)):
        raise ConfigError(
            f"processor {spec.name!r}: input_format='json' needs the input's message class: "
            "pass input_type=MyMessage or annotate the handler's first parameter"
        )
    return JsonInput(message_class, "ignore" if unknown == "ignore" else "reject")


def annotated_input(handler: Any) -> Any:
    """The annotation of the handler's first parameter, evaluated; None if it has none."""
    try:
        first = next(iter(inspect.signature(handler).parameters.values()))
    except (StopIteration, TypeError, ValueError):
        return None
    annotation = first.annotation
    if isinstance(annotation, str):  # `from __future__ import annotations`
        namespace = getattr(inspect.unwrap(handler), "__globals__", {})
        try:
            annotation = eval(annotation, dict(namespace))  # as typing.get_type_hints does
        except Exception:  # noqa: BLE001 - an unresolvable annotation is "none given"
            return None
    return None if annotation is inspect.Parameter.empty else annotation


def json_fields(fields: list[bytes], schema_id: bytes) -> list[bytes]:
    """The entry's fields with `schema_id` in front when it has none (a raw JSON entry), so
    the envelope layer checks size, encoding, attempt and headers as for any entry."""
    if SCHEMA_ID in fields[::2]:
        return fields
    return [SCHEMA_ID, schema_id, *fields]


def parse_json(payload: bytes, json_input: JsonInput) -> Message:
    """`payload` (a JSON object) parsed into the input type.

    Raises:
        DecodeError: `json_invalid`, `json_unknown_field` or `json_type_mismatch`.
    """
    try:
        document = json.loads(payload)
    except (UnicodeDecodeError, ValueError) as exc:
        raise DecodeError(reasons.JSON_INVALID, f"not JSON: {exc}") from None
    if not isinstance(document, dict):
        raise DecodeError(
            reasons.JSON_INVALID, f"expected a JSON object, got {type(document).__name__}"
        )
    message = json_input.message_class()
    try:
        json_format.ParseDict(
            document, message, ignore_unknown_fields=json_input.unknown_fields == "ignore",
            descriptor_pool=_pool(message),  # an Any names types of its own schema
        )  # fmt: skip
    except json_format.ParseError as exc:
        text = str(exc).split("\n", 1)[0]
        reason = (
            reasons.JSON_UNKNOWN_FIELD
            if "has no field named" in text
            else reasons.JSON_TYPE_MISMATCH
        )
        raise DecodeError(reason, text) from None
    except (ValueError, TypeError, OverflowError) as exc:
        raise DecodeError(reasons.JSON_TYPE_MISMATCH, str(exc)) from None
    return message


def to_json(message: Message) -> dict[str, Any]:
    """The message as protobuf's canonical JSON mapping (a dict ready for json.dumps)."""
    result: dict[str, Any] = json_format.MessageToDict(message, descriptor_pool=_pool(message))
    return result


def _pool(message: Message) -> descriptor_pool.DescriptorPool:
    return cast("descriptor_pool.DescriptorPool", message.DESCRIPTOR.file.pool)
