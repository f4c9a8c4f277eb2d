"""The dashboard in a real browser: no modules, fifty modules, a failed and a rolled-back deploy;
readable on a laptop screen (nothing wider than it), drawn from the status document."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
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


def entry(module: str, n: int, outcome: RunStatus, stages: dict[str, float], error: str = "") -> HistoryEntry:
    return HistoryEntry(module, revision(module, n), f"req-{module}-{n}", RequestKind.DEPLOY,
                        Trigger("blob", f"{module}/{n:04d}.tar.gz"), outcome, NOW - timedelta(hours=10 - n),
                        stages, {"code": "x", "message": error} if error else None, ("code",), "code")


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
                                                   "register": 0.3, "bake": 60.0}),
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
        widths = laptop.eval_on_selector_all("#m-module-00 tr:nth-child(4) .bar",
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
