"""``deployer run``: a run of a deployed flow, on the Prefect API the deployer itself uses, and
what it does until it ends (its states and its log lines, in order).

``MODULE`` alone runs the module's one deployment; ``MODULE/DEPLOYMENT`` names one (its name, or
``flow/name`` as Prefect shows it). ``--param k=v`` values are JSON when they parse as JSON, else
text, as ``prefect deployment run --param`` takes them.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from deployer import run_limits
from deployer.errors import NotFound, UsageError
from deployer.names import unknown_module, with_suggestion
from deployer.ports.orchestrator import FINAL_STATES, RunLog, RunRef
from deployer.services import Services

#: how often a watched run is looked at, and how long its last log lines may trail its end
#: (workers send logs in batches, every 2 s by default)
POLL_SECONDS = 1.0
LOG_GRACE_SECONDS = 4.0
LOG_LAG = timedelta(seconds=30)
LOG_PAGE = 200  # the most Prefect gives in one answer


@dataclass(frozen=True)
class Target:
    module: str
    flow: str
    deployment: str
    revision: str  # what the deployment is registered at: what its runs pull

    @property
    def name(self) -> str:
        return f"{self.flow}/{self.deployment}"


@dataclass(frozen=True)
class RunEvent:
    """A watched run's new state (``log`` None) or a line it logged; ``moved``: the run was
    re-created at another revision before it started, and the watch follows the new one."""

    at: datetime
    state: str
    log: RunLog | None = None
    moved: RunRef | None = None


def target(services: Services, spec: str) -> Target:
    """The deployment ``MODULE[/DEPLOYMENT]`` names, as Prefect has it registered now."""
    module, _, wanted = spec.partition("/")
    got = services.state.module(module)
    if got is None:
        raise unknown_module(services, module)
    if got.value.current is None:
        raise NotFound(f"module {module} has no deployed revision",
                       hint=f"deploy it first: deployer deploy flows/{module}")
    versions = services.orchestrator.versions(module)  # "flow/name" -> revision
    if not versions:
        raise NotFound(f"module {module} has no deployment in Prefect",
                       hint="its prefect.yaml declares none, or they were removed: `deployer status`")
    choices = {key: key.partition("/")[2] for key in versions}
    if not wanted:
        if len(versions) > 1:
            listed = ", ".join(f"{module}/{name}" for name in sorted(choices.values()))
            raise UsageError(f"module {module} has {len(versions)} deployments: say which",
                             hint=f"deployer run {module}/<deployment>; its deployments: {listed}")
        [key] = versions
    else:
        found = [k for k, name in choices.items() if wanted in (k, name)]
        if len(found) != 1:
            names = sorted(choices.values())
            what = "is ambiguous" if found else "is not one of its deployments"
            raise NotFound(f"{wanted!r} {what} (module {module})",
                           hint=with_suggestion(wanted, names, f"its deployments: {', '.join(names)}",
                                                prefix=f"{module}/"))
        [key] = found
    flow, _, name = key.partition("/")
    return Target(module, flow, name, versions[key])


def parse_parameters(pairs: Sequence[str]) -> dict[str, Any]:
    """``k=v`` pairs: ``v`` as JSON when it parses (``3``, ``true``, ``[1, 2]``), else text."""
    parameters: dict[str, Any] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key.strip():
            raise UsageError(f"--param {pair!r} is not KEY=VALUE",
                             hint="e.g. --param day=2026-12-06 --param limit=10")
        try:
            value: Any = json.loads(raw)
        except ValueError:
            value = raw
        parameters[key.strip()] = value
    return parameters


def start(services: Services, where: Target, parameters: dict[str, Any]) -> RunRef:
    return services.orchestrator.start_run(where.flow, where.deployment, parameters,
                                           tags=("deployer-run",))


def watch(services: Services, run_id: str, *, timeout: float | None = None,
          poll: float = POLL_SECONDS) -> Iterator[RunEvent]:
    """The run's states and log lines as they come, until it is final and its last lines are in
    (or ``timeout`` seconds pass: then the run goes on, unwatched)."""
    orchestrator, state = services.orchestrator, ""
    seen: set[str] = set()
    latest: datetime | None = None
    deadline = None if timeout is None else services.now().timestamp() + timeout
    ended_at: float | None = None
    last: RunRef | None = None
    while True:
        try:
            run = orchestrator.run_status(run_id)
        except NotFound as exc:
            # not started when its deployment moved to another revision: re-created at that
            # one under the same name (``Orchestrator.register``); follow the new run
            moved = orchestrator.successor(last) if last is not None else None
            if moved is None:
                raise NotFound(f"flow run {run_id} is gone from Prefect",
                               hint="someone deleted it: no run of its name took its place") from exc
            run_id, last, state = moved.id, moved, ""
            yield RunEvent(services.now(), moved.state, moved=moved)
            continue
        last = run
        # read again from a while back: a line that arrives late is stamped earlier
        logs = _new_lines(services, run_id, None if latest is None else latest - LOG_LAG, seen)
        for line in logs:
            latest = line.at if latest is None else max(latest, line.at)
            yield RunEvent(line.at, run.state, line)
        if run.state != state:
            state = run.state
            if state not in FINAL_STATES:  # the final one after the run's last lines
                yield RunEvent(services.now(), state)
        now = services.now().timestamp()
        if state in FINAL_STATES:
            ended_at = now if ended_at is None else ended_at
            if not logs and now - ended_at >= LOG_GRACE_SECONDS:
                yield RunEvent(services.now(), state)
                return
        if deadline is not None and now >= deadline:
            return
        services.sleep(poll)


def _new_lines(services: Services, run_id: str, since: datetime | None,
               seen: set[str]) -> list[RunLog]:
    """The run's lines since ``since`` not in ``seen`` (added to it), a page at a time."""
    found: list[RunLog] = []
    while True:
        page = services.orchestrator.run_logs(run_id, since, LOG_PAGE)
        found.extend(line for line in page if line.id not in seen)
        seen.update(line.id for line in page)
        if len(page) < LOG_PAGE or page[-1].at == since:
            return found
        since = page[-1].at


def final(services: Services, run_id: str) -> RunRef:
    return services.orchestrator.run_status(run_id)


#: how far back in an agent's log to look for the line its limiter printed
LIMIT_LOG_LINES = 2000


def stopped_over_limit(services: Services, module: str, run_id: str,
                       message: str = "") -> dict[str, Any] | None:
    """What the limiter said of a run it stopped for its memory (``run_limits``): the run
    crashed because it used more than its deployment's ``memory``. None: not that. A run in a
    container of its own (``isolation: run``) says it in its crash message (``per_run``); an
    agent's runs, in the agent's log."""
    for found in run_limits.parse(message):
        if found.get("flow_run") == run_id:
            return {**found, "by": "the deployer"}
    for agent in services.runtime.list(module, detailed=False):
        for found in run_limits.parse(services.runtime.logs(agent.name, tail=LIMIT_LOG_LINES)):
            if found.get("flow_run") == run_id:
                return found
    return None
