"""gristmill: asyncio stream processors on Redis Streams with runtime-defined protobuf schemas."""

from gristmill.app import App
from gristmill.errors import (
    ConfigError,
    DeadLetter,
    DecodeError,
    GristmillError,
    IncompatibleSchema,
    Retry,
    SchemaError,
    SchemaNotFound,
)
from gristmill.settings import Settings

__all__ = (
    "App",
    "ConfigError",
    "DeadLetter",
    "DecodeError",
    "GristmillError",
    "IncompatibleSchema",
    "Retry",
    "SchemaError",
    "SchemaNotFound",
    "Settings",
)
