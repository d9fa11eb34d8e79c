"""SchemaBuilder sets `json_name` as protoc does, so JSON encoders of other languages agree."""

from __future__ import annotations

from typing import TYPE_CHECKING

from gristmill.schemas.build import SchemaBuilder, json_name
from gristmill.schemas.protofiles import compile_proto

if TYPE_CHECKING:
    from pathlib import Path


def test_json_names_match_protoc(tmp_path: Path) -> None:
    names = ["a", "unit_price_cents", "a__b", "_x", "x_", "already_camelCase", "v2_id"]
    proto = tmp_path / "j.proto"
    body = "".join(f"  string {name} = {n};\n" for n, name in enumerate(names, 1))
    proto.write_text(f'syntax = "proto3";\npackage j;\nmessage M {{\n{body}}}\n')
    (compiled,) = [f for f in compile_proto(proto).file if f.name.endswith("j.proto")]
    protoc = {f.name: f.json_name for f in compiled.message_type[0].field}
    assert {name: json_name(name) for name in names} == protoc
    builder = SchemaBuilder("j.proto", package="j")
    message = builder.message("M")
    for n, name in enumerate(names, 1):
        message.field(name, n, "string")
    built = builder.build()
    descriptor = built.descriptor("j.M")
    assert {f.name: f.json_name for f in descriptor.fields} == protoc
