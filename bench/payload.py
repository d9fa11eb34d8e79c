"""The benchmark's message types, built at runtime (no protoc), and the per-message work.

Every system under test does the same work per message: decode an `Order` (~100 bytes of
protobuf), build the `Invoice` for it, encode that. This module imports only protobuf, so the
peers' own virtualenvs (which have no gristmill) can import it too.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

if TYPE_CHECKING:
    from collections.abc import Callable

_STRING, _INT64 = 9, 3
_OPTIONAL = 1

_pool = descriptor_pool.DescriptorPool()
_file = descriptor_pb2.FileDescriptorProto(
    name="bench/orders.proto", package="bench", syntax="proto3"
)
_order = _file.message_type.add(name="Order")
for number, (name, kind) in enumerate(
    (("id", _STRING), ("sku", _STRING), ("quantity", _INT64), ("price_cents", _INT64),
     ("note", _STRING)),
    start=1,
):  # fmt: skip
    _order.field.add(name=name, number=number, type=kind, label=_OPTIONAL)
_invoice = _file.message_type.add(name="Invoice")
for number, (name, kind) in enumerate(
    (("order_id", _STRING), ("sku", _STRING), ("quantity", _INT64), ("total_cents", _INT64),
     ("note", _STRING)),
    start=1,
):  # fmt: skip
    _invoice.field.add(name=name, number=number, type=kind, label=_OPTIONAL)
_pool.Add(_file)

Order: Any = message_factory.GetMessageClass(_pool.FindMessageTypeByName("bench.Order"))
Invoice: Any = message_factory.GetMessageClass(_pool.FindMessageTypeByName("bench.Invoice"))

_NOTE = "deliver to the loading dock at the back of the north warehouse; ring twice"  # pads the payload to ~100 B


def order_payload(number: int, note: str = _NOTE) -> bytes:
    """The encoded `Order` number `number` (its id is unique per number)."""
    order = Order(
        id=f"o-{number:09d}",
        sku=f"sku-{number % 9973:05d}",
        quantity=1 + number % 7,
        price_cents=199 + number % 1000,
        note=note,
    )
    return bytes(order.SerializeToString())


def invoice_for(order: Any) -> Any:
    """The per-message transform: an `Invoice` built from a decoded `Order`."""
    return Invoice(
        order_id=order.id,
        sku=order.sku,
        quantity=order.quantity,
        total_cents=order.quantity * order.price_cents,
        note=order.note,
    )


def transform(payload: bytes) -> bytes:
    """Decode an `Order`, build its `Invoice`, encode it: what every hand loop does."""
    return bytes(invoice_for(Order.FromString(payload)).SerializeToString())


def restate(invoice: Any) -> Any:
    """The work of a later pipeline stage: an `Invoice` built from a decoded `Invoice`."""
    return Invoice(
        order_id=invoice.order_id,
        sku=invoice.sku,
        quantity=invoice.quantity,
        total_cents=invoice.total_cents + invoice.total_cents // 5,  # add 20% tax
        note=invoice.note,
    )


def restate_payload(payload: bytes) -> bytes:
    """Decode an `Invoice`, build the next one, encode it: a later pipeline stage's work."""
    return bytes(restate(Invoice.FromString(payload)).SerializeToString())


def stage_work(stage: int) -> Callable[[bytes], bytes]:
    """The per-message work of pipeline stage `stage` (0: Order -> Invoice, then restate)."""
    return transform if stage == 0 else restate_payload
