"""`runtime schemas`: list, show, register and check schemas, set modes, write typed stubs."""

from __future__ import annotations

import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click
from rich.markup import escape
from rich.table import Table

from gristmill.cli.connection import with_redis
from gristmill.cli.output import fail, out, print_json
from gristmill.cli.serve import settings_or_fail
from gristmill.errors import IncompatibleSchema, SchemaError
from gristmill.schemas.codegen import StubSource, render_stubs
from gristmill.schemas.compat import Mode, check_compatible
from gristmill.schemas.descriptors import file_set_of
from gristmill.schemas.ids import canonical_types, looks_like_schema_id, schema_id_of
from gristmill.schemas.protofiles import load_proto
from gristmill.schemas.registry import SchemaRegistry

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from gristmill.schemas.descriptors import BuiltSchema
    from gristmill.schemas.record import SchemaRecord

_T = TypeVar("_T")
_JSON = click.option("--json", "as_json", is_flag=True, help="One JSON document, for scripts.")
_INCLUDE = click.option(
    "--include", "-I", "include", multiple=True, type=click.Path(file_okay=False, path_type=Path),
    help="Directory that imports resolve against (default: the file's own).",
)  # fmt: skip


def _with_registry(work: Callable[[SchemaRegistry], Awaitable[_T]]) -> _T:
    settings = settings_or_fail()
    try:
        return with_redis(settings, lambda redis: work(SchemaRegistry(redis, settings.key_prefix)))
    except IncompatibleSchema as exc:
        fail(str(exc), "keep the field's type and number, or reserve it and use a new number", 1)
    except SchemaError as exc:
        fail(str(exc), "fix the schema, or check the id or subject with `runtime schemas list`")


def _load(file: Path, include: tuple[Path, ...]) -> BuiltSchema:
    try:
        return load_proto(file, include)
    except SchemaError as exc:
        fail(str(exc), "fix the .proto file (protoc's words are above)")


def _pick(built: BuiltSchema, messages: tuple[str, ...], file: Path) -> list[str]:
    names = built.message_names()
    unknown = [name for name in messages if name not in names]
    if unknown:
        fail(f"{file} defines no {', '.join(unknown)}", f"pick from: {', '.join(names)}")
    return list(messages) or names


@click.group()
def schemas() -> None:
    """The protobuf schemas in the registry: list, show, register, check, mode, codegen."""


@schemas.command("list")
@_JSON
def list_schemas(as_json: bool) -> None:
    """Every subject with its latest version and compatibility mode."""

    async def gather(registry: SchemaRegistry) -> list[dict[str, Any]]:
        rows = []
        for subject in await registry.subjects():
            versions = await registry.versions(subject)
            latest = await registry.fetch(versions[-1]) if versions else None
            rows.append(
                {
                    "subject": subject,
                    "versions": len(versions),
                    "latest_id": versions[-1] if versions else None,
                    "message": latest.message_name if latest else None,
                    "mode": (await registry.compatibility(subject)).value,
                }
            )
        return rows

    rows = _with_registry(gather)
    if as_json:
        print_json(rows)
        return
    if not rows:
        out.print("no schemas registered yet; add one with `runtime schemas register FILE`")
        return
    table = Table()
    for header in ("SUBJECT", "VERSIONS", "LATEST ID", "MESSAGE", "MODE"):
        table.add_column(header, overflow="fold")  # ids and names are copied: never elide
    for row in rows:
        table.add_row(
            escape(row["subject"]), str(row["versions"]), row["latest_id"] or "-",
            escape(row["message"] or "-"), row["mode"],
        )  # fmt: skip
    out.print(table)


def _describe(record: SchemaRecord) -> dict[str, Any]:
    created = datetime.datetime.fromtimestamp(record.created_at_ms / 1000, tz=datetime.UTC)
    return {
        "schema_id": record.schema_id,
        "message": record.message_name,
        "subject": record.subject,
        "version": record.version,
        "created_at": created.isoformat(timespec="seconds"),
        "files": [file.name for file in record.file_set.file],
        "types": canonical_types(record.file_set, record.message_name),
    }


@schemas.command()
@click.argument("target", metavar="ID|SUBJECT")
@click.option("--version", "version", type=int, help="A subject's version (default: latest).")
@_JSON
def show(target: str, version: int | None, as_json: bool) -> None:
    """One schema, by id or by subject: its message, files and fields."""

    async def find(registry: SchemaRegistry) -> SchemaRecord:
        if looks_like_schema_id(target) and version is None:
            record = await registry.fetch(target)
            if record is not None:
                return record
        return await registry.version(target, version)

    described = _describe(_with_registry(find))
    if as_json:
        print_json(described)
        return
    out.print(f"[bold]{escape(described['message'])}[/]  {described['schema_id']}")
    out.print(
        f"subject {escape(described['subject'])} v{described['version']}, "
        f"registered {described['created_at']}, files: {escape(', '.join(described['files']))}"
    )
    entries = {t["name"]: t for t in described["types"] if t.get("map_entry")}
    for described_type in described["types"]:
        if described_type["name"] in entries:
            continue  # shown as map<key, value> on the field that uses it
        out.print(f"\n{described_type['kind']} [bold]{escape(described_type['name'])}[/]")
        if described_type["kind"] == "enum":
            for value in described_type["values"]:
                out.print(f"  {value['number']:>4}  {escape(value['name'])}")
            continue
        for field in described_type["fields"]:
            out.print(f"  {field['number']:>4}  {escape(_field_text(field, entries))}")


def _field_text(field: dict[str, Any], entries: dict[str, dict[str, Any]]) -> str:
    entry = entries.get(field["type_name"])
    if entry is not None:
        key, value = entry["fields"]
        kind = f"map<{key['type']}, {value['type_name'] or value['type']}>"
    else:
        label = "" if field["label"] == "optional" else f"{field['label']} "
        kind = label + (field["type_name"] or field["type"])
    oneof = f"  (oneof {field['oneof']})" if field["oneof"] else ""
    return f"{field['name']}: {kind}{oneof}"


@schemas.command()
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--message", "messages", multiple=True, help="Register only this message (repeat).")
@click.option("--subject", help="Subject to register under (default: the message's full name).")
@_INCLUDE
@_JSON
def register(
    file: Path, messages: tuple[str, ...], subject: str | None, include: tuple[Path, ...],
    as_json: bool,
) -> None:  # fmt: skip
    """Register the messages of a .proto FILE (each under its full name by default)."""
    built = _load(file, include)
    names = _pick(built, messages, file)
    if subject is not None and len(names) != 1:
        fail(f"--subject with {len(names)} messages", "name one message with --message")

    async def register_all(registry: SchemaRegistry) -> list[dict[str, Any]]:
        rows = []
        for name in names:
            registered = await registry.register(built.descriptor(name), subject)
            rows.append({"message": name, "subject": registered.subject,
                         "version": registered.version, "schema_id": registered.schema_id})  # fmt: skip
        return rows

    rows = _with_registry(register_all)
    if as_json:
        print_json(rows)
        return
    for row in rows:
        out.print(
            f"{escape(row['message'])}: {row['schema_id']} "
            f"(subject {escape(row['subject'])} v{row['version']})"
        )


@schemas.command()
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--subject", required=True, help="The subject the new version would join.")
@click.option("--message", help="The message to check (default: the subject's message).")
@_INCLUDE
@_JSON
def check(
    file: Path, subject: str, message: str | None, include: tuple[Path, ...], as_json: bool
) -> None:
    """Would a message of FILE be accepted as the next version of SUBJECT? Exit 1 if not."""
    built = _load(file, include)

    async def history(registry: SchemaRegistry) -> tuple[list[SchemaRecord], Mode]:
        count = len(await registry.versions(subject))
        previous = [await registry.version(subject, number) for number in range(1, count + 1)]
        return previous, await registry.compatibility(subject)

    previous, mode = _with_registry(history)
    name = message or (previous[-1].message_name if previous else None)
    if name is None:
        names = built.message_names()
        if len(names) != 1:
            fail(f"subject {subject} is new and {file} has {len(names)} messages",
                 "name one with --message")  # fmt: skip
        name = names[0]
    _pick(built, (name,), file)
    descriptor = built.descriptor(name)
    schema_id = schema_id_of(descriptor)
    try:
        problems = check_compatible(
            mode, file_set_of(descriptor), name, [(p.file_set, p.message_name) for p in previous]
        )
    except SchemaError as exc:
        fail(str(exc), "fix the .proto file")
    verdict: dict[str, Any] = {"subject": subject, "message": name, "mode": mode.value, "schema_id": schema_id,
               "registered": schema_id in {p.schema_id for p in previous},
               "compatible": not problems, "problems": problems}  # fmt: skip
    if as_json:
        print_json(verdict)
    elif verdict["compatible"]:
        already = " (already registered)" if verdict["registered"] else ""
        out.print(
            f"{escape(verdict['message'])} {verdict['schema_id']} is {verdict['mode']}-compatible "
            f"with subject {escape(subject)}{already}"
        )
    else:
        out.print(f"[bold red]incompatible[/] with subject {escape(subject)} ({verdict['mode']}):")
        for problem in verdict["problems"]:
            out.print(f"  {escape(problem)}")
    if not verdict["compatible"]:
        raise SystemExit(1)


@schemas.command()
@click.argument("subject_names", nargs=-1, metavar="[SUBJECT]...")
@click.option(
    "--out", "out_dir", type=click.Path(file_okay=False, path_type=Path),
    default=Path("typings"), show_default=True, help="Directory to write the .pyi stubs to.",
)  # fmt: skip
def codegen(subject_names: tuple[str, ...], out_dir: Path) -> None:
    """Write typed .pyi stubs of the latest version of SUBJECTs (default: all).

    Point mypy's mypy_path at the output directory and annotate handlers with the classes.
    """

    async def latest(registry: SchemaRegistry) -> list[StubSource]:
        names = list(subject_names) or await registry.subjects()
        records = [await registry.version(name) for name in names]
        return [StubSource(r.file_set, r.message_name, name, r.version, r.schema_id)
                for name, r in zip(names, records, strict=True)]  # fmt: skip

    sources = _with_registry(latest)
    if not sources:
        fail("no subjects registered", "register schemas first: runtime schemas register FILE")
    try:
        stubs = render_stubs(sources)
    except SchemaError as exc:
        fail(str(exc), "fix the registered schema")
    for relative, text in stubs.items():
        path = out_dir / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        for parent in path.relative_to(out_dir).parents:
            if parent != Path():
                (out_dir / parent / "__init__.pyi").touch()
        path.write_text(text, encoding="utf-8")
        out.print(f"wrote {escape(str(path))}")


@schemas.command()
@click.argument("subject")
@click.argument("mode", required=False, type=click.Choice([m.value for m in Mode]))
def mode(subject: str, mode: str | None) -> None:
    """Show SUBJECT's compatibility mode, or set it to MODE."""

    async def run(registry: SchemaRegistry) -> Mode | list[str]:
        if not await registry.versions(subject):
            return await registry.subjects()  # a typo must not create a subject's mode
        if mode is not None:
            await registry.set_compatibility(subject, Mode(mode))
        return await registry.compatibility(subject)

    found = _with_registry(run)
    if isinstance(found, list):
        fail(
            f"no subject {subject}; subjects: {', '.join(sorted(found)) or 'none yet'}",
            "give a subject from `runtime schemas list` (a subject exists once registered)",
        )
    out.print(f"{escape(subject)}: {found.value}")
