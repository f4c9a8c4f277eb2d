"""requirements.txt (what the function app ships) and pyproject.toml (the deployer CLI) list the
same dependencies, with the same bounds, but for the CLI's own: the full prefect where the app
has prefect-client, rich and pathspec."""

from __future__ import annotations

import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[2]
CLI_ONLY = {"prefect", "rich", "pathspec"}


def _requirements(lines: list[str]) -> dict[str, Requirement]:
    found = [Requirement(line) for line in (raw.split("#")[0].strip() for raw in lines) if line]
    return {canonicalize_name(r.name): r for r in found}


def test_the_app_and_the_cli_list_the_same_dependencies_but_for_the_clis_own() -> None:
    app = _requirements((ROOT / "requirements.txt").read_text().splitlines())
    cli = _requirements(tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"])
    assert set(app) - {"prefect-client"} == set(cli) - CLI_ONLY
    for name in set(app) - {"prefect-client"}:
        assert app[name].specifier == cli[name].specifier, name
    assert app["prefect-client"].specifier == cli["prefect"].specifier


def test_the_app_never_ships_the_prefect_server() -> None:
    app = _requirements((ROOT / "requirements.txt").read_text().splitlines())
    assert "prefect" not in app and "rich" not in app
