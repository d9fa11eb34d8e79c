"""Message types for runtime tests, built at runtime from descriptors (no protoc)."""

from __future__ import annotations

from typing import Any

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

from gristmill.timing.packing import pack_varint  # protobuf varints are the same LEB128

_STRING, _INT64, _MESSAGE = 9, 3, 11
_pool = descriptor_pool.DescriptorPool()
_file = descriptor_pb2.FileDescriptorProto(
    name="tests/orders.proto", package="tests", syntax="proto3"
)
_order = _file.message_type.add(name="Order")
_order.field.add(name="id", number=1, type=_STRING, label=1)
_order.field.add(name="sku", number=2, type=_STRING, label=1)
_order.field.add(name="quantity", number=3, type=_INT64, label=1)
_invoice = _file.message_type.add(name="Invoice")
_invoice.field.add(name="order_id", number=1, type=_STRING, label=1)
_invoice.field.add(name="total_cents", number=2, type=_INT64, label=1)
_node = _file.message_type.add(name="Node")
_node.field.add(name="child", number=1, type=_MESSAGE, type_name=".tests.Node", label=1)
_pool.Add(_file)

Order: Any = message_factory.GetMessageClass(_pool.FindMessageTypeByName("tests.Order"))
Invoice: Any = message_factory.GetMessageClass(_pool.FindMessageTypeByName("tests.Invoice"))
Node: Any = message_factory.GetMessageClass(_pool.FindMessageTypeByName("tests.Node"))


def nested_payload(depth: int) -> bytes:
    """A Node nested `depth` levels deep, encoded by hand (the runtime refuses to build it)."""
    payload = b""
    for _ in range(depth):
        payload = b"\x0a" + pack_varint(len(payload)) + payload
    return payload
