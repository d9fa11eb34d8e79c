"""gristmill: asyncio stream processors on Redis Streams with runtime-defined protobuf schemas."""

from gristmill.app import App
from gristmill.context import Context
from gristmill.errors import (
    ConfigError,
    DeadLetter,
    DecodeError,
    GristmillError,
    IncompatibleSchema,
    InvalidSchema,
    Retry,
    SchemaError,
    SchemaNotFound,
)
from gristmill.failures.policy import RetryPolicy
from gristmill.keys import class_lane
from gristmill.producer import Publisher
from gristmill.runtime import Runtime
from gristmill.schemas.build import SchemaBuilder
from gristmill.schemas.decoding import decode
from gristmill.schemas.protofiles import load_proto
from gristmill.settings import Settings

__all__ = (
    "App",
    "ConfigError",
    "Context",
    "DeadLetter",
    "DecodeError",
    "GristmillError",
    "IncompatibleSchema",
    "InvalidSchema",
    "Publisher",
    "Retry",
    "RetryPolicy",
    "Runtime",
    "SchemaBuilder",
    "SchemaError",
    "SchemaNotFound",
    "Settings",
    "class_lane",
    "decode",
    "load_proto",
)
