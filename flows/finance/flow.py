"""Positions and P&L of a small equity book, from the trades and closing prices in this folder.

Average-cost accounting: buys raise the position at their price, sells realize
(sell price - average cost) x quantity. Open positions are marked to the latest close on or
before ``as_of``. No network: everything the flow needs ships with the module.
"""

from __future__ import annotations

import csv
import os
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact

HERE = Path(__file__).resolve().parent
CENT = Decimal("0.01")


@dataclass
class Position:
    ticker: str
    quantity: int = 0
    cost: Decimal = Decimal(0)  # total cost of the open quantity
    realized: Decimal = Decimal(0)

    @property
    def average_cost(self) -> Decimal:
        return self.cost / self.quantity if self.quantity else Decimal(0)


@task
def load_trades(path: Path, as_of: str) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as handle:
        rows = [row for row in csv.DictReader(handle) if row["date"] <= as_of]
    return sorted(rows, key=lambda row: row["date"])


@task
def load_marks(path: Path, as_of: str) -> dict[str, Decimal]:
    marks: dict[str, tuple[str, Decimal]] = {}
    with open(path, newline="", encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            date, ticker = row["date"], row["ticker"]
            if date <= as_of and (ticker not in marks or date >= marks[ticker][0]):
                marks[ticker] = (date, Decimal(row["close"]))
    return {ticker: close for ticker, (_, close) in marks.items()}


@task
def book_positions(trades: list[dict[str, str]]) -> dict[str, Position]:
    book: dict[str, Position] = {}
    for trade in trades:
        position = book.setdefault(trade["ticker"], Position(trade["ticker"]))
        quantity, price = int(trade["quantity"]), Decimal(trade["price"])
        if trade["side"] == "buy":
            position.quantity += quantity
            position.cost += price * quantity
        elif trade["side"] == "sell":
            if quantity > position.quantity:
                raise ValueError(f"sell of {quantity} {trade['ticker']} exceeds the position")
            average = position.average_cost
            position.realized += (price - average) * quantity
            position.cost -= average * quantity
            position.quantity -= quantity
        else:
            raise ValueError(f"unknown side {trade['side']!r} on {trade['date']}")
    return book


@task
def mark_to_market(book: dict[str, Position], marks: dict[str, Decimal]) -> dict[str, object]:
    lines = []
    for ticker in sorted(book):
        position = book[ticker]
        mark = marks.get(ticker)
        if position.quantity and mark is None:
            raise ValueError(f"no closing price for open position {ticker}")
        unrealized = (mark - position.average_cost) * position.quantity if position.quantity else 0
        lines.append({
            "ticker": ticker,
            "quantity": position.quantity,
            "average_cost": str(_cents(position.average_cost)),
            "mark": str(mark) if mark is not None else None,
            "realized": str(_cents(position.realized)),
            "unrealized": str(_cents(Decimal(unrealized))),
        })
    realized = sum((Decimal(line["realized"]) for line in lines), Decimal(0))
    unrealized = sum((Decimal(line["unrealized"]) for line in lines), Decimal(0))
    return {
        "positions": lines,
        "realized": str(realized),
        "unrealized": str(unrealized),
        "total": str(realized + unrealized),
    }


def _cents(value: Decimal) -> Decimal:
    return value.quantize(CENT, rounding=ROUND_HALF_UP)


@flow(name="daily-pnl", log_prints=True)
def daily_pnl(as_of: str | None = None) -> dict[str, object]:
    as_of = as_of or "9999-12-31"
    currency = os.environ.get("FINANCE_REPORT_CURRENCY", "USD")
    trades = load_trades(HERE / "trades.csv", as_of)
    marks = load_marks(HERE / "prices.csv", as_of)
    report = mark_to_market(book_positions(trades), marks)
    report["currency"] = currency
    logger = get_run_logger()
    for line in report["positions"]:  # type: ignore[union-attr]
        logger.info("%(ticker)-5s qty %(quantity)4d  avg %(average_cost)9s  mark %(mark)9s  "
                    "realized %(realized)9s  unrealized %(unrealized)9s", line)
    logger.info("P&L %s %s (realized %s, unrealized %s)", currency, report["total"],
                report["realized"], report["unrealized"])
    create_markdown_artifact(key="daily-pnl", markdown=_markdown(report),
                             description=f"Positions and P&L as of {as_of}")
    return report


def _markdown(report: dict[str, object]) -> str:
    rows = ["| ticker | quantity | avg cost | mark | realized | unrealized |",
            "|---|---:|---:|---:|---:|---:|"]
    for line in report["positions"]:  # type: ignore[attr-defined]
        rows.append(f"| {line['ticker']} | {line['quantity']} | {line['average_cost']} | "
                    f"{line['mark']} | {line['realized']} | {line['unrealized']} |")
    rows.append(f"\n**P&L {report['currency']} {report['total']}** (realized {report['realized']}, "
                f"unrealized {report['unrealized']})")
    return "\n".join(rows)


if __name__ == "__main__":
    print(daily_pnl())
