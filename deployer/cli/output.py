"""How the CLI speaks: rich for people (stderr for errors), JSON for machines."""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime
from typing import Any

from rich.console import Console

from deployer import codec
from deployer.errors import BundleInvalid, DeployerError

#: tables are made to fit 100 columns; when output is not a terminal (CI logs, pipes) rich would
#: assume 80, so it gets $COLUMNS, or 100
PIPED_WIDTH = 100


def _width(stream: Any) -> int | None:
    import os

    if stream.isatty():
        return None
    columns = os.environ.get("COLUMNS", "")
    return int(columns) if columns.isdigit() else PIPED_WIDTH


out = Console(highlight=False, soft_wrap=True, width=_width(sys.stdout))
err = Console(stderr=True, highlight=False, soft_wrap=True, width=_width(sys.stderr))


def emit_json(data: Any) -> None:
    sys.stdout.write(json.dumps(codec.to_data(data), indent=2, sort_keys=True) + "\n")


def failure(exc: DeployerError, as_json: bool) -> None:
    """A command's failure: on stderr for people; in JSON mode also one document on stdout."""
    if as_json:
        emit_json({"ok": False, "error": exc.to_dict()})
    error(exc)


def error(exc: DeployerError) -> None:
    if isinstance(exc, BundleInvalid):
        err.print(f"[bold red]error:[/] {exc.source} is invalid "
                  f"({len(exc.problems)} problem{'s' if len(exc.problems) != 1 else ''}):",
                  markup=True)
        for problem in exc.problems:
            err.print(f"  - {problem}", markup=False)
    else:
        err.print("[bold red]error:[/] ", end="", markup=True)
        err.print(exc.message, markup=False)
    if exc.hint:
        err.print("  [dim]hint:[/] ", end="", markup=True)
        err.print(exc.hint, markup=False)
    tail = getattr(exc, "log_tail", "")
    if tail:
        err.print("  --- log (tail) ---", markup=False)
        err.print(tail, markup=False)


def ago(when: datetime | None, now: datetime | None = None) -> str:
    if when is None:
        return "-"
    seconds = int(((now or datetime.now(UTC)) - when).total_seconds())
    if seconds < 0:
        return f"in {_span(-seconds)}"
    return f"{_span(seconds)} ago"


def _span(seconds: int) -> str:
    if seconds < 90:
        return f"{seconds}s"
    if seconds < 5400:
        return f"{seconds // 60}m"
    if seconds < 129600:
        return f"{seconds // 3600}h"
    return f"{seconds // 86400}d"
