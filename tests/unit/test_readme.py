"""README.md stays a ten-minute read that is true: the first-module walk-through in order, every
command it shows exists, the bake window's defaults it states are the settings' own, and every
link in it and in docs/ leads to a file that exists."""

from __future__ import annotations

import re
from pathlib import Path

from deployer.cli import build_parser
from deployer.config import SETTINGS

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text()
#: ten minutes at a reading pace of 250 words a minute
MAX_WORDS = 2500


def test_the_readme_is_a_ten_minute_read() -> None:
    assert len(README.split()) <= MAX_WORDS


def test_the_walk_through_goes_new_validate_deploy_run_change_rollback_in_that_order() -> None:
    steps = ["deployer new ", "deployer validate ", "deployer deploy ", "deployer run ", "Edit `flow.py`",
             "deployer rollback "]
    places = [README.find(step) for step in steps]
    assert -1 not in places and places == sorted(places), dict(zip(steps, places, strict=True))
    assert README.find("make demo") < README.find("## Your first module")


def test_every_command_it_shows_exists() -> None:
    commands = set(build_parser()._subparsers._group_actions[0].choices)  # type: ignore[union-attr]
    shown = set(re.findall(r"`deployer (?:--settings \S+ )?([a-z]+)", README))
    assert shown and shown <= commands, shown - commands


def test_the_bake_window_defaults_it_states_are_the_settings_defaults() -> None:
    defaults = {s.env: s.default for s in SETTINGS}
    section = README[README.index("### The bake window"):README.index("## Azure in brief")]
    assert f"`DEPLOYER_BAKE_SECONDS` ({defaults['DEPLOYER_BAKE_SECONDS']} s by" in section
    assert f"`DEPLOYER_BAKE_RUNS` runs of the new revision have finished ({defaults['DEPLOYER_BAKE_RUNS']})" in section
    ratio = float(defaults["DEPLOYER_BAKE_FAILURE_RATIO"] or 0)
    assert f"`DEPLOYER_BAKE_FAILURE_RATIO` ({ratio:.0%}".replace("%", " %") in section


def test_every_relative_link_leads_to_a_file() -> None:
    for doc in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        for target in re.findall(r"\]\(([^)#:]+)(?:#[^)]*)?\)", doc.read_text()):
            assert (doc.parent / target).exists(), f"{doc.name}: {target}"
