from __future__ import annotations

from datetime import UTC, datetime

import pytest

from deployer.ncrontab import parse

SAT = datetime(2026, 11, 28, 5, 0, 0, tzinfo=UTC)  # a Saturday


@pytest.mark.parametrize("expression,after,expected", [
    ("0 0 2 * * *", SAT, datetime(2026, 11, 29, 2, 0, 0, tzinfo=UTC)),
    ("*/15 * * * * *", SAT.replace(second=14), SAT.replace(second=15)),
    ("0 30 9 * * MON-FRI", SAT, datetime(2026, 11, 30, 9, 30, tzinfo=UTC)),
    ("0 0 0 1 JAN *", SAT, datetime(2027, 1, 1, tzinfo=UTC)),
    ("0 0 12 29 2 *", SAT, datetime(2028, 2, 29, 12, tzinfo=UTC)),
    ("0 5,35 * * * *", SAT.replace(minute=5), SAT.replace(minute=35)),
    ("0 0 */6 * * 0", SAT, datetime(2026, 11, 29, 0, 0, tzinfo=UTC)),
])
def test_next_occurrence(expression: str, after: datetime, expected: datetime) -> None:
    assert parse(expression).next_after(after) == expected


@pytest.mark.parametrize("expression,problem", [
    ("0 2 * * *", "needs 6 fields"),
    ("60 * * * * *", "out of range"),
    ("0 0 25 * * *", "out of range"),
    ("0 0 0 * FOO *", "not a number"),
    ("0 */0 * * * *", "step must be positive"),
])
def test_bad_expressions_are_rejected(expression: str, problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        parse(expression)
