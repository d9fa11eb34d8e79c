"""The example services' message types, loaded at runtime from schemas/orders.proto."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from gristmill.schemas.protofiles import load_proto

ORDERS = load_proto(Path(__file__).resolve().parent.parent / "schemas" / "orders.proto")

# Any: the classes exist only at runtime (`runtime schemas codegen` writes typed stubs)
Order: Any = ORDERS["example.orders.Order"]
LineItem: Any = ORDERS["example.orders.LineItem"]
Invoice: Any = ORDERS["example.orders.Invoice"]
Receipt: Any = ORDERS["example.orders.Receipt"]
