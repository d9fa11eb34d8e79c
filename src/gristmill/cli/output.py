"""The CLI's one console (and its stderr twin); errors name the problem and the fix."""

from __future__ import annotations

import json
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


def print_json(value: Any) -> None:
    """One JSON document on stdout, for scripts (`--json`)."""
    out.print_json(json.dumps(value, default=str))
