"""Loading .proto files at runtime with protoc from the grpcio-tools wheel."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest

from gristmill.errors import InvalidSchema
from gristmill.schemas.protofiles import compile_proto, load_proto
from tests.schemas.people import PERSON, ROOT

if TYPE_CHECKING:
    from pathlib import Path


def test_the_example_schemas_load() -> None:
    orders = load_proto(ROOT / "schemas" / "orders.proto")
    assert orders.message_names() == [
        "example.orders.LineItem", "example.orders.Order", "example.orders.Invoice",
        "example.orders.Receipt",
    ]  # fmt: skip
    receipt_class: Any = orders["example.orders.Receipt"]  # built at run time: no typed constructor
    receipt = receipt_class(order_id="o-1", payment_id="p-9")
    assert receipt.WhichOneof("outcome") == "payment_id"
    person: Any = load_proto(ROOT / "schemas" / "person.proto")[PERSON]()
    person.tags["t"].tags.append("x")
    person.updated_at.FromSeconds(5)
    assert type(person).FromString(person.SerializeToString()) == person


def test_imports_come_along_but_well_known_files_are_not_needed(tmp_path: Path) -> None:
    (tmp_path / "common.proto").write_text(
        'syntax = "proto3"; package c; message Money { int64 cents = 1; }'
    )
    (tmp_path / "shop.proto").write_text(
        'syntax = "proto3"; package s; import "common.proto"; '
        'import "google/protobuf/duration.proto"; '
        "message Price { c.Money amount = 1; google.protobuf.Duration valid_for = 2; }"
    )
    built = load_proto(tmp_path / "shop.proto")
    assert [f.name for f in built.file_set.file] == [
        "common.proto", "google/protobuf/duration.proto", "shop.proto"
    ]  # fmt: skip
    assert built.message_names() == ["s.Price"]
    amount = built.descriptor("s.Price").fields_by_name["amount"].message_type
    assert amount is not None
    assert amount.full_name == "c.Money"


def test_a_broken_file_is_invalid_with_protoc_s_words(tmp_path: Path) -> None:
    broken = tmp_path / "broken.proto"
    broken.write_text('syntax = "proto3"; message M { strin name = 1; }')
    with pytest.raises(InvalidSchema, match=r"protoc refused it:\n.*strin"):
        compile_proto(broken)


def test_a_missing_file_is_invalid(tmp_path: Path) -> None:
    with pytest.raises(InvalidSchema, match="no such file"):
        load_proto(tmp_path / "nope.proto")
