"""A task's parameters as a protobuf message: built at declaration from the type hints.

    @app.task(queue="emails")
    async def send_email(recipient: str, subject: str, attempts: list[int] | None = None): ...

becomes `message SendEmailArgs { string recipient = 1; string subject = 2; ... }` in package
`gristmill.tasks`, registered like any schema, so any language reads a task from the wire
format. Field numbers follow the parameters' order: add new parameters at the end (with a
default), as with any protobuf message, or the registry refuses the changed schema at start.

    str -> string    bytes -> bytes    bool -> bool    int -> sint64    float -> double
    datetime -> google.protobuf.Timestamp (naive values are read as UTC)
    T | None -> proto3 optional (None when unset)    list[T] -> repeated    dict[str, T] -> map

A task whose only parameter (besides a `TaskContext`) is a protobuf message class takes that
message as it is. Anything else fails at declaration, naming the parameter.
"""

from __future__ import annotations

import inspect
import types
import typing
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from google.protobuf.message import Message

from gristmill.errors import ConfigError
from gristmill.schemas.build import SchemaBuilder
from gristmill.tasks.context import TaskContext

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

    from gristmill.schemas.descriptors import BuiltSchema

PACKAGE = "gristmill.tasks"
_SCALARS: dict[type, str] = {str: "string", bytes: "bytes", bool: "bool", int: "sint64"}
_SCALARS[float] = "double"
_TIMESTAMP = "google.protobuf.Timestamp"


@dataclass(frozen=True, slots=True)
class _Field:
    name: str
    kind: type  # the scalar, datetime, or the list's / dict's value type
    shape: str  # "one", "optional", "list" or "map"


@dataclass(frozen=True)
class Signature:
    """How one task's arguments become a message and back."""

    message_class: type[Message]
    schema: BuiltSchema | None  # None: the task takes a message class of the user's
    fields: tuple[_Field, ...]
    context_parameter: str | None  # the parameter that receives the TaskContext, if any
    python: inspect.Signature  # the parameters a caller gives (without the TaskContext)

    @property
    def takes_message(self) -> bool:
        return self.schema is None

    def message_of(self, args: tuple[object, ...], kwargs: Mapping[str, object]) -> Message:
        """The message carrying these call arguments (defaults filled in).

        Raises:
            TypeError: If the arguments do not fit the task's parameters or hints.
        """
        if self.context_parameter is not None and self.context_parameter in kwargs:
            raise TypeError(f"{self.context_parameter!r} is given by the worker, not the caller")
        bound = self.python.bind_partial(*args, **kwargs)
        bound.apply_defaults()
        for name in self.python.parameters:
            if name not in bound.arguments:
                raise TypeError(f"missing argument {name!r}")
        if self.takes_message:
            (value,) = bound.arguments.values()
            if not isinstance(value, self.message_class):
                raise TypeError(f"expected a {self.message_class.DESCRIPTOR.full_name} message")
            return value
        message = self.message_class()
        for spec in self.fields:
            _set(message, spec, bound.arguments[spec.name])
        return message

    def arguments_of(self, message: Message, context: TaskContext) -> dict[str, object]:
        """The keyword arguments of a run, read back from the message."""
        kwargs: dict[str, object] = {}
        if self.takes_message:
            kwargs[next(iter(self.python.parameters))] = message
        else:
            for spec in self.fields:
                kwargs[spec.name] = _get(message, spec)
        if self.context_parameter is not None:
            kwargs[self.context_parameter] = context
        return kwargs


def signature_of(function: Callable[..., object], task_name: str) -> Signature:
    """The message of `function`'s parameters, built and ready to register.

    Raises:
        ConfigError: If a parameter has no hint, an unsupported one, or is `*args`/`**kwargs`.
    """
    python = inspect.signature(function)
    try:  # TaskContext resolves by name even when imported only under TYPE_CHECKING
        hints = typing.get_type_hints(function, localns={"TaskContext": TaskContext})
    except Exception as exc:  # noqa: BLE001 - a NameError, a bad string annotation
        raise ConfigError(f"task {task_name!r}: its type hints do not resolve: {exc}") from None
    fields: list[_Field] = []
    context_parameter = None
    message_parameters = []
    for name, parameter in python.parameters.items():
        where = f"task {task_name!r}, parameter {name!r}"
        if parameter.kind in (parameter.VAR_POSITIONAL, parameter.VAR_KEYWORD):
            raise ConfigError(f"{where}: *args and **kwargs cannot travel in a message")
        if name not in hints:
            raise ConfigError(f"{where}: needs a type hint (str, int, list[str], ...)")
        hint = hints[name]
        if hint is TaskContext:
            context_parameter = name
        elif isinstance(hint, type) and issubclass(hint, Message):
            message_parameters.append((name, hint))
        else:
            fields.append(_field(name, hint, where))
    if context_parameter is not None:  # callers never pass it: bind without it
        python = python.replace(
            parameters=[p for n, p in python.parameters.items() if n != context_parameter]
        )
    if message_parameters:
        if fields or len(message_parameters) > 1:
            raise ConfigError(
                f"task {task_name!r}: a message parameter must be the task's only argument "
                "(besides a TaskContext); put the other values into the message"
            )
        message_class = message_parameters[0][1]
        return Signature(message_class, None, (), context_parameter, python)
    builder = SchemaBuilder(f"gristmill/tasks/{task_name}.proto", package=PACKAGE)
    message_name = "".join(part[:1].upper() + part[1:] for part in task_name.split("_")) + "Args"
    message = builder.message(message_name)
    for number, spec in enumerate(fields, start=1):
        kind = _TIMESTAMP if spec.kind is datetime else _SCALARS[spec.kind]
        if spec.shape == "map":
            message.map_field(spec.name, number, "string", kind)
        else:
            message.field(
                spec.name, number, kind,
                repeated=spec.shape == "list", optional=spec.shape == "optional" and kind != _TIMESTAMP,
            )  # fmt: skip
    schema = builder.build()
    message_class = schema[f"{PACKAGE}.{message_name}"]
    return Signature(message_class, schema, tuple(fields), context_parameter, python)


def _field(name: str, hint: object, where: str) -> _Field:
    def value_type(inner: object) -> type:
        if inner in _SCALARS or inner is datetime:
            return inner
        raise ConfigError(
            f"{where}: {_show(hint)} is not supported; use str, bytes, bool, int, float, "
            "datetime, T | None, list[T] or dict[str, T] of those, or one message class"
        )

    origin = typing.get_origin(hint)
    arguments = typing.get_args(hint)
    if origin in (typing.Union, types.UnionType) and type(None) in arguments:
        rest = [a for a in arguments if a is not type(None)]
        if len(rest) == 1 and typing.get_origin(rest[0]) is None:
            return _Field(name, value_type(rest[0]), "optional")
    elif origin is list and len(arguments) == 1:
        return _Field(name, value_type(arguments[0]), "list")
    elif origin is dict and len(arguments) == 2 and arguments[0] is str:
        return _Field(name, value_type(arguments[1]), "map")
    elif origin is None:
        return _Field(name, value_type(hint), "one")
    return _Field(name, value_type(None), "one")  # raises, naming the hint


def _show(hint: object) -> str:
    if typing.get_origin(hint) is None and isinstance(hint, type):
        return hint.__name__
    return str(hint).replace("typing.", "")


def _set(message: Message, spec: _Field, value: object) -> None:
    if value is None:
        if spec.shape in ("optional", "list", "map"):
            return
        raise TypeError(f"argument {spec.name!r} may not be None")
    field: Any = getattr(message, spec.name)
    if spec.shape == "list":
        if spec.kind is datetime:
            for item in _sequence(value, spec.name):
                field.add().FromDatetime(_aware(item, spec.name))
        else:
            field.extend(_sequence(value, spec.name))
    elif spec.shape == "map":
        if not isinstance(value, dict):
            raise TypeError(f"argument {spec.name!r} must be a dict")
        for key, item in value.items():
            if spec.kind is datetime:
                field[key].FromDatetime(_aware(item, spec.name))
            else:
                field[key] = item
    elif spec.kind is datetime:
        field.FromDatetime(_aware(value, spec.name))
    else:
        setattr(message, spec.name, value)


def _get(message: Message, spec: _Field) -> object:
    field: Any = getattr(message, spec.name)
    if spec.shape == "optional" and not message.HasField(spec.name):
        return None
    if spec.shape == "list":
        if spec.kind is datetime:
            return [item.ToDatetime(tzinfo=UTC) for item in field]
        return list(field)
    if spec.shape == "map":
        if spec.kind is datetime:
            return {key: item.ToDatetime(tzinfo=UTC) for key, item in field.items()}
        return dict(field)
    if spec.kind is datetime:
        return field.ToDatetime(tzinfo=UTC)
    return field


def _sequence(value: object, name: str) -> list[Any]:
    if isinstance(value, (str, bytes)) or not isinstance(value, (list, tuple)):
        raise TypeError(f"argument {name!r} must be a list")
    return list(value)


def _aware(value: object, name: str) -> datetime:
    if not isinstance(value, datetime):
        raise TypeError(f"argument {name!r} must be a datetime")
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)
