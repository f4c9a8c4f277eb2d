"""Every command says what it does and shows an example; shell completion offers the commands,
then the options of the command being typed."""

from __future__ import annotations

import argparse
import subprocess

import pytest

from deployer.cli import EXAMPLES, build_parser
from deployer.cli.completion import script

SUB = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))


@pytest.mark.parametrize("name", sorted(SUB.choices))
def test_every_command_has_a_description_and_an_example(name: str) -> None:
    text = SUB.choices[name].format_help()
    assert SUB.choices[name].description and f"example: {EXAMPLES[name]}" in text


def complete(shell_script: str, *words: str) -> list[str]:
    line = " ".join(words)
    program = (f"{shell_script}\nCOMP_WORDS=({line}); COMP_CWORD={len(words) - 1}; _deployer; "
               'printf "%s\\n" "${COMPREPLY[@]}"')
    done = subprocess.run(["bash", "-c", program], capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    return done.stdout.split()


def test_bash_completion_offers_commands_then_their_options() -> None:
    bash = script(build_parser(), "bash")
    assert complete(bash, "deployer", "sta") == ["status"]
    assert "--watch" in complete(bash, "deployer", "status", "--")
    assert complete(bash, "deployer", "--settings", "x.json", "logs", "--fo") == ["--follow"]
    assert script(build_parser(), "zsh").startswith("autoload -U +X bashcompinit && bashcompinit\n")
