"""JSON -> protobuf -> JSON for every field kind, and every way a JSON input can be refused."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from gristmill import App
from gristmill.errors import ConfigError, DecodeError
from gristmill.failures import reasons
from gristmill.schemas.jsonformat import JsonInput, json_fields, json_input_of, parse_json, to_json
from gristmill.schemas.protofiles import load_proto

KINDS = load_proto(Path(__file__).with_name("kinds.proto"))
Everything: Any = KINDS["kinds.Everything"]
Point: Any = KINDS["kinds.Point"]

FULL = {
    "name": "all of them",
    "small": -7,
    "big": "9007199254740993",  # past 2^53: a string, as the JSON mapping writes int64
    "unsignedBig": "18446744073709551615",
    "zigzag": -3,
    "fixed": "42",
    "ratio": 0.25,
    "ratio32": 1.5,
    "flag": True,
    "blob": "AAEC/w==",
    "colour": "GREEN",
    "origin": {"x": 1, "y": 2},
    "path": [{"x": 1}, {"y": 1}],
    "tags": ["a", "b"],
    "palette": ["RED", "GREEN"],
    "counts": {"a": "1", "b": "2"},
    "namedPoints": {"home": {"x": 3, "y": 4}},
    "pointLists": {"1": {"points": [{"x": 1}, {"x": 2}]}, "-2": {"points": []}},
    "at": {"x": 9},
    "maybe": 0,  # set to zero: proto3 `optional` keeps presence
    "when": "2026-12-01T23:59:59.123Z",
    "took": "1.500s",
    "extra": {"k": [1, "two", None, {"deep": True}]},
    "anything": "a string Value",
    "boxed": "5",
    "mask": "name,origin.x",
    "nothing": {},
    "list": [1, "x"],
    "packedAny": {"@type": "type.googleapis.com/kinds.Point", "x": 5, "y": 6},
    "customName": "json_name honoured",
}


def _json_input(**options: Any) -> JsonInput:
    return JsonInput(Everything, **options)


def test_every_field_kind_round_trips() -> None:
    message = parse_json(json.dumps(FULL).encode(), _json_input())
    again = Everything.FromString(message.SerializeToString())  # through the wire format
    out = to_json(again)
    expected = dict(FULL, pointLists={"1": {"points": [{"x": 1}, {"x": 2}]}, "-2": {}})
    assert out == expected
    assert again.point_lists[1].points[1].x == 2
    assert again.WhichOneof("choice") == "at"
    assert again.HasField("maybe")
    assert again.snake_case_name == "json_name honoured"


def test_proto_field_names_are_accepted_too() -> None:
    message: Any = parse_json(b'{"unsigned_big": "3", "snake_case_name": "s"}', _json_input())
    assert (message.unsigned_big, message.snake_case_name) == (3, "s")


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b"{not json", reasons.JSON_INVALID),
        (b"\xff\xfe", reasons.JSON_INVALID),
        (b"[1, 2]", reasons.JSON_INVALID),
        (b'"a string"', reasons.JSON_INVALID),
        (b'{"nope": 1}', reasons.JSON_UNKNOWN_FIELD),
        (b'{"origin": {"z": 1}}', reasons.JSON_UNKNOWN_FIELD),
        (b'{"small": "abc"}', reasons.JSON_TYPE_MISMATCH),
        (b'{"small": 1.5}', reasons.JSON_TYPE_MISMATCH),
        (b'{"small": 4294967296}', reasons.JSON_TYPE_MISMATCH),
        (b'{"name": 5}', reasons.JSON_TYPE_MISMATCH),
        (b'{"colour": "PURPLE"}', reasons.JSON_TYPE_MISMATCH),
        (b'{"tags": "a"}', reasons.JSON_TYPE_MISMATCH),
        (b'{"when": "yesterday"}', reasons.JSON_TYPE_MISMATCH),
        (b'{"text": "a", "at": {}}', reasons.JSON_TYPE_MISMATCH),  # two members of a oneof
        (b'{"blob": 5}', reasons.JSON_TYPE_MISMATCH),
    ],
)
def test_bad_json_is_refused_with_its_reason(payload: bytes, reason: str) -> None:
    with pytest.raises(DecodeError) as caught:
        parse_json(payload, _json_input())
    assert caught.value.reason == reason, str(caught.value)
    assert reason in reasons.KNOWN


def test_unknown_fields_can_be_ignored() -> None:
    message: Any = parse_json(b'{"nope": 1, "name": "n"}', _json_input(unknown_fields="ignore"))
    assert message.name == "n"


def test_a_raw_entry_gets_the_input_type_id_in_front() -> None:
    assert json_fields([b"payload", b"{}"], b"s1x") == [b"schema_id", b"s1x", b"payload", b"{}"]
    already = [b"payload", b"{}", b"schema_id", b"s1y"]
    assert json_fields(already, b"s1x") == already


def _processor(app: App, **options: Any) -> Any:
    return app.processors[next(iter(app.processors))]


def test_the_input_type_comes_from_the_annotation_or_input_type() -> None:
    app = App("j")

    @app.processor(input="in", input_format="json")
    async def annotated(message: Everything, ctx: object) -> None: ...

    @app.processor(input="in", input_format="json", input_type=Point)
    async def explicit(message: object, ctx: object) -> None: ...

    found = [json_input_of(spec) for spec in app.processors.values()]
    assert [f.message_class if f else None for f in found] == [Everything, Point]


def test_json_without_a_type_or_with_a_bad_option_fails_at_declaration() -> None:
    app = App("j")
    with pytest.raises(ConfigError, match="needs the input's message class"):

        @app.processor(input="in", input_format="json")
        async def untyped(message, ctx):  # type: ignore[no-untyped-def]
            ...

    with pytest.raises(ConfigError, match="input_format='yaml'"):

        @app.processor(input="in", input_format="yaml")
        async def yaml(message: object, ctx: object) -> None: ...
