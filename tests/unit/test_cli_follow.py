"""`logs --follow` prints each new line once, from a runtime that returns tails, not streams."""

from __future__ import annotations

import pytest

from deployer.cli import logs
from deployer.cli.logs import follow, new_lines


@pytest.mark.parametrize(("before", "now", "new"), [
    (["a", "b"], ["a", "b", "c"], ["c"]),
    (["a", "b", "c"], ["b", "c", "d", "e"], ["d", "e"]),  # the tail moved on
    (["a", "b"], ["a", "b"], []),
    ([], ["a"], ["a"]),
    (["x", "y"], ["p", "q"], ["p", "q"]),  # a restarted agent: all new
    (["a", "a"], ["a", "a", "a"], ["a"]),
])
def test_new_lines_are_what_follows_what_was_shown(before: list[str], now: list[str], new: list[str]) -> None:
    assert new_lines(before, now) == new


def test_follow_prints_new_output_until_interrupted(monkeypatch: pytest.MonkeyPatch,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    tails = iter(["one\ntwo\nthree", "two\nthree\nfour"])

    class Runtime:
        def logs(self, name: str, tail: int) -> str:
            try:
                return next(tails)
            except StopIteration:
                raise KeyboardInterrupt from None

    class Services:
        runtime = Runtime()

    monkeypatch.setattr(logs, "FOLLOW_SECONDS", 0)
    assert follow(Services(), "agent-x", "one\ntwo", as_json=True) == 0
    printed = [line for line in capsys.readouterr().out.splitlines() if line]
    assert [__import__("json").loads(line)["line"] for line in printed] == ["one", "two", "three", "four"]
