"""The pipeline's two waits: for a new agent's worker to come ONLINE, and for old agents to drain.

Both poll with the injected clock and sleep (tests never wait for real) and bound themselves with
a deadline; what they find out is raised (``AgentUnhealthy``) or returned, never swallowed.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from deployer.bootstrap import Services
from deployer.errors import AgentUnhealthy
from deployer.pipeline.tracker import Progress
from deployer.ports import AgentState

#: looking for the new worker while it starts: a local worker is ONLINE ~2 s after start, a
#: container group after 30-90 s of provisioning; start quick, back off to spare ARM's read quota
HEALTH_POLL_FIRST_SECONDS = 0.25
HEALTH_POLL_MAX_SECONDS = 5.0
#: how often to look at the old agents' in-flight runs while they drain
DRAIN_POLL_SECONDS = 1.0


def wait_until_online(services: Services, pool: str, name: str) -> None:
    """Until the agent's worker is ONLINE in Prefect; fails fast if its process/container stops."""
    timeout = services.settings.health_timeout_seconds
    deadline = services.now() + timedelta(seconds=timeout)
    pause = HEALTH_POLL_FIRST_SECONDS
    while True:
        info = services.runtime.get(name)
        if info is None or info.state in (AgentState.STOPPED, AgentState.FAILED):
            raise AgentUnhealthy(f"agent {name} stopped before its worker came ONLINE "
                                 f"({info.detail if info else 'gone'})",
                                 log_tail=services.runtime.logs(name),
                                 hint="the agent's log tail shows why; the old agent keeps serving")
        if name in services.orchestrator.online_workers(pool):
            return
        if services.now() >= deadline:
            raise AgentUnhealthy(f"agent {name} did not come ONLINE in Prefect within {timeout}s "
                                 "(DEPLOYER_HEALTH_TIMEOUT_SECONDS)",
                                 log_tail=services.runtime.logs(name),
                                 hint="check PREFECT_API_URL/PREFECT_API_KEY as the agent sees them; "
                                 "the old agent keeps serving")
        services.sleep(pause)
        pause = min(pause * 1.5, HEALTH_POLL_MAX_SECONDS)


def wait_for_drain(services: Services, pool: str, olds: list[tuple[str, str]], deadline: datetime,
                   progress: Progress) -> tuple[list[str], bool]:
    """Until the old agents (name, queue) have no run in flight, or the deadline. Returns the runs
    that will never finish here (their agent is gone, or the deadline passed) and whether it
    timed out."""
    while True:
        waiting: list[str] = []  # runs of live old agents: they may still finish
        orphaned: list[str] = []  # runs whose agent is gone: they never will
        for name, queue in olds:
            runs = [r.id for r in services.orchestrator.in_flight(pool, queue)]
            info = services.runtime.get(name)
            alive = info is not None and info.state is AgentState.RUNNING
            (waiting if alive else orphaned).extend(runs)
        if not waiting:
            return orphaned, False
        if services.now() >= deadline:
            progress.note(f"drain timeout: {len(waiting)} run(s) still in flight will be marked crashed")
            return waiting + orphaned, True
        progress.note(f"draining: {len(waiting)} run(s) in flight on the old agent(s)")
        services.sleep(DRAIN_POLL_SECONDS)
