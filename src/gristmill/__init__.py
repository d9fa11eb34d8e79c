"""gristmill: asyncio stream processors on Redis Streams with runtime-defined protobuf schemas."""

from gristmill.app import App
from gristmill.context import Context
from gristmill.errors import (
    CommitRefused,
    ConfigError,
    DeadLetter,
    DecodeError,
    GristmillError,
    IncompatibleSchema,
    InvalidSchema,
    ReplyError,
    Retry,
    SchemaError,
    SchemaNotFound,
    ScriptError,
    ServerError,
    TaskFailed,
)
from gristmill.failures.policy import RetryPolicy
from gristmill.keys import class_lane
from gristmill.producer import Publisher
from gristmill.runtime import Runtime
from gristmill.schemas.build import SchemaBuilder
from gristmill.schemas.decoding import decode
from gristmill.schemas.protofiles import load_proto
from gristmill.settings import Settings
from gristmill.tasks.client import TaskHandle
from gristmill.tasks.context import TaskContext
from gristmill.tasks.declare import Task
from gristmill.tasks.schedules import Schedules
from gristmill.tasks.spec import Call

__all__ = (
    "App",
    "Call",
    "CommitRefused",
    "ConfigError",
    "Context",
    "DeadLetter",
    "DecodeError",
    "GristmillError",
    "IncompatibleSchema",
    "InvalidSchema",
    "Publisher",
    "ReplyError",
    "Retry",
    "RetryPolicy",
    "Runtime",
    "Schedules",
    "SchemaBuilder",
    "SchemaError",
    "SchemaNotFound",
    "ScriptError",
    "ServerError",
    "Settings",
    "Task",
    "TaskContext",
    "TaskFailed",
    "TaskHandle",
    "class_lane",
    "decode",
    "load_proto",
)
