"""The example module's numbers, checked by hand: average-cost P&L of the book it ships."""

from __future__ import annotations

import importlib.util
import sys
from decimal import Decimal
from pathlib import Path

FLOW = Path(__file__).resolve().parents[2] / "flows" / "finance" / "flow.py"


def load():  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location("finance_flow", FLOW)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules["finance_flow"] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def test_positions_and_pnl_of_the_shipped_book() -> None:
    finance = load()
    trades = finance.load_trades.fn(FLOW.parent / "trades.csv", "9999-12-31")
    marks = finance.load_marks.fn(FLOW.parent / "prices.csv", "9999-12-31")
    report = finance.mark_to_market.fn(finance.book_positions.fn(trades), marks)
    aapl = next(p for p in report["positions"] if p["ticker"] == "AAPL")
    # 60 @ 268.40 + 20 @ 262.05 = 80 @ 266.8125; sell 30 @ 271.90 realizes 152.625
    assert aapl["quantity"] == 50 and aapl["average_cost"] == "266.81" and aapl["realized"] == "152.63"
    assert report["total"] == "1209.61"
    assert Decimal(report["realized"]) + Decimal(report["unrealized"]) == Decimal(report["total"])


def test_as_of_excludes_later_trades_and_prices() -> None:
    finance = load()
    trades = finance.load_trades.fn(FLOW.parent / "trades.csv", "2026-11-05")
    assert [t["ticker"] for t in trades] == ["MSFT", "AAPL", "NVDA"]
    assert finance.load_marks.fn(FLOW.parent / "prices.csv", "2026-11-25")["AAPL"] == Decimal("274.15")
