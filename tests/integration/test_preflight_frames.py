"""The preflight's loader (what agents and their warm checkers run) names the user's own file and
line for a failure at import, never Python's internals (``<frozen os>``)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from deployer import preflight

FLOW = '''import os

from prefect import flow

TOKEN = os.environ["API_TOKEN"]


@flow
def hello():
    return TOKEN
'''


def test_a_key_error_at_import_is_reported_at_the_users_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "flow.py").write_text(FLOW)
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("API_TOKEN", raising=False)
    namespace: dict[str, object] = {}
    exec(compile(preflight.CHECKER + preflight._LOAD, "preflight", "exec"), namespace)
    [result] = namespace["_load_all"]([["hello", "flow.py:hello"]], os.getcwd())
    assert (result["ok"], result["exception"], result["file"], result["line"]) == (False, "KeyError", "flow.py", 5)
