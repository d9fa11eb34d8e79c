"""The CLI's one console (and its stderr twin); errors name the problem and the fix."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any, NoReturn

from rich.console import Console
from rich.markup import escape

out = Console(highlight=False)
err = Console(stderr=True, highlight=False)


def fail(problem: str, fix: str, code: int = 2) -> NoReturn:
    """Print `problem` and `fix` on stderr, one line each, and exit with `code`."""
    err.print(f"[bold red]error:[/] {escape(problem)}", soft_wrap=True)
    err.print(f"[dim]fix:[/] {escape(fix)}", soft_wrap=True)
    raise SystemExit(code)


def utc_text(ms: int | None, *, empty: str = "-", timespec: str = "milliseconds") -> str:
    """An epoch-ms instant as ISO 8601 in UTC; `empty` for none (None, 0 or less)."""
    if ms is None or ms <= 0:
        return empty
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec=timespec)


def print_json(value: Any) -> None:
    """One JSON document on stdout, for scripts (`--json`)."""
    out.print_json(json.dumps(value, default=str))
