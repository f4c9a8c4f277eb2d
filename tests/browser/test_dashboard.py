"""The dashboard in a real browser: no modules, fifty modules, a failed and a rolled-back deploy;
readable on a laptop screen (nothing wider than it), drawn from the status document."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from deployer import codec
from deployer.dashboard import render
from deployer.models import (
    AgentRef,
    HistoryEntry,
    ModuleState,
    RequestKind,
    Revision,
    RunRecord,
    RunStatus,
    Stage,
    StageStatus,
    Trigger,
)
from deployer.pipeline.status import AgentStatus, ModuleStatus
from deployer.ports.agents import AgentInfo, AgentState
from tests.conftest import ARTIFACTS

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


@contextmanager
def serve(page_html: str) -> Iterator[str]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = page_html.encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/api/dashboard"
    finally:
        server.shutdown()
        server.server_close()


def revision(module: str, n: int) -> Revision:
    return Revision(module, f"sha256:{n:012d}" + "a" * 52, f"hmac-sha256:{n:08d}" + "b" * 56,
                    image=f"reg.azurecr.io/prefect-flows/{module}:{n:012d}", bundle=f"{module}/{n:04d}.tar.gz")


def entry(module: str, n: int, outcome: RunStatus, stages: dict[str, float], error: str = "",
          kind: RequestKind = RequestKind.DEPLOY, live_after: float | None = None) -> HistoryEntry:
    """As the state store gives it back: its stages sorted by name (JSON with sorted keys)."""
    return HistoryEntry(module, revision(module, n), f"req-{module}-{n}", kind,
                        Trigger("blob", f"{module}/{n:04d}.tar.gz"), outcome, NOW - timedelta(hours=10 - n),
                        dict(sorted(stages.items())), {"code": "x", "message": error} if error else None,
                        ("code",), "code", live_after)


def data(modules: int) -> dict[str, Any]:
    statuses, deploys = [], {}
    for m in range(modules):
        name = f"module-{m:02d}"
        current = revision(name, 3)
        agent = f"agent-{name}-20261201110000"
        state = ModuleState(name, current=current, agent=AgentRef(agent, current.id, agent, NOW), request_id="r")
        last = RunRecord(f"req-{name}-5", RequestKind.DEPLOY, name, Trigger("blob", "x"), RunStatus.ROLLED_BACK,
                         NOW, NOW, revision=revision(name, 5))
        info = AgentInfo(agent, name, current.id, agent, AgentState.RUNNING, NOW, "pid 1")
        statuses.append(ModuleStatus(name, state, last, [AgentStatus(info, "ONLINE", True, "current")]))
        deploys[name] = codec.to_data([
            entry(name, 3, RunStatus.SUCCEEDED, {"validate": 0.2, "plan": 0.1, "build": 95.0, "start-agent": 40.0,
                                                 "wait-online": 12.0, "register": 0.4, "commit": 0.1}),
            entry(name, 4, RunStatus.FAILED, {"validate": 0.2, "plan": 0.1, "check-code": 6.0},
                  "flow.py:1: ModuleNotFoundError: No module named 'pandas'"),
            entry(name, 5, RunStatus.ROLLED_BACK, {"plan": 0.1, "publish-code": 0.1, "check-code": 5.0,
                                                   "register": 0.3, "commit": 0.1, "bake": 60.0}, live_after=5.6),
            replace(entry(name, 3, RunStatus.SUCCEEDED, {"plan": 0.1, "reuse-image": 0.1, "start-agent": 3.0,
                                                         "wait-online": 2.0, "register": 0.3, "commit": 0.1},
                          kind=RequestKind.ROLLBACK, live_after=5.6), at=NOW - timedelta(hours=2)),
        ])
    return {"modules": codec.to_data(statuses), "deploys": deploys, "cleanup": None,
            "prefect_ui": "http://127.0.0.1:4200"}


def fits_the_screen(page: Any) -> bool:
    return bool(page.evaluate("document.documentElement.scrollWidth <= window.innerWidth"))


def test_with_no_modules_it_says_how_to_deploy_one(laptop: Any) -> None:
    with serve(render({"modules": [], "deploys": {}, "cleanup": None, "prefect_ui": "http://127.0.0.1:4200"})) as url:
        laptop.goto(url)
        assert "No modules yet" in laptop.inner_text("body") and fits_the_screen(laptop)


def test_fifty_modules_with_failed_and_rolled_back_deploys_fit_a_laptop_screen(laptop: Any) -> None:
    with serve(render(data(50))) as url:
        laptop.goto(url)
        assert laptop.locator("table.overview tr").count() == 51  # a header and fifty modules
        assert laptop.locator("section h2").count() == 51  # fifty modules and the cleanup
        assert laptop.locator("td.bad", has_text="failed").count() == 50
        assert laptop.locator("td.warn", has_text="rolled_back").count() == 100  # last request, history
        assert fits_the_screen(laptop)
        # drawn to scale: the build (95 s) is the widest bar of a deploy that took 147.8 s
        widths = laptop.eval_on_selector_all("#m-module-00 tr:nth-child(5) .bar",
                                             "bars => bars.map(b => b.getBoundingClientRect().width)")
        assert max(widths) == widths[2] and abs(widths[2] / sum(widths) - 95 / 147.8) < 0.02
        ARTIFACTS.mkdir(exist_ok=True)
        laptop.screenshot(path=str(ARTIFACTS / "dashboard-fifty-modules.png"))


def test_values_are_escaped_not_markup(laptop: Any) -> None:
    page = data(1)
    page["deploys"]["module-00"][1]["error"]["message"] = "<script>window.pwned=1</script>"
    with serve(render(page)) as url:
        laptop.goto(url)
        assert laptop.evaluate("window.pwned === undefined")


def test_stages_are_in_time_order_with_a_colour_each_a_legend_and_rollbacks_and_requests_in_progress_apart(
        laptop: Any) -> None:
    page = data(2)
    busy = RunRecord("req-module-00-6", RequestKind.DEPLOY, "module-00", Trigger("cli", "flows/module-00"),
                     RunStatus.RUNNING, NOW - timedelta(seconds=30), NOW, revision=revision("module-00", 6),
                     stages=(Stage("plan", StageStatus.DONE, NOW - timedelta(seconds=30), NOW - timedelta(seconds=29)),
                             Stage("build", StageStatus.RUNNING, NOW - timedelta(seconds=29))))
    page["modules"][0]["active"] = [codec.to_data(busy)]
    page["now"] = NOW.isoformat()
    with serve(render(page)) as url:
        laptop.goto(url)
        section = laptop.locator("#m-module-00")
        kinds = section.locator("tr").nth(3).locator(".bar").evaluate_all(  # the rolled-back deploy
            "bars => bars.map(b => b.getAttribute('title').split(' ')[0])")
        assert kinds == ["plan", "publish-code", "check-code", "register", "commit", "bake"]  # not by name
        colours = laptop.eval_on_selector_all(
            ".legend .swatch", "s => s.map(e => getComputedStyle(e).backgroundColor + getComputedStyle(e).backgroundImage)")
        legend = laptop.locator(".legend .key").all_inner_texts()
        assert len(colours) == len(set(colours)) == len(legend) and "bake" in legend and "build" in legend
        first = section.locator("tr").nth(1)  # the request in progress heads the table, its stage counted to now
        assert "active" in (first.get_attribute("class") or "") and "running" in first.inner_text()
        assert "30.0 s" in first.inner_text()
        rollback = section.locator("tr.rollback")
        assert rollback.count() == 1 and "rollback" in rollback.inner_text()
        assert all(t.endswith("UTC") for t in section.locator("tr td:first-child").all_inner_texts())
        assert "live after" in section.inner_text() and "5.6" not in first.inner_text()
        assert fits_the_screen(laptop)
        ARTIFACTS.mkdir(exist_ok=True)
        laptop.screenshot(path=str(ARTIFACTS / "dashboard-timeline.png"), full_page=True)
