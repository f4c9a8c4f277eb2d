"""Fakes of the platform ports (images, agents, orchestrator, bundles, queue), with state the
tests can read and faults they can inject. Contract tests keep them honest against the real
adapters."""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO, Any

from deployer.bundle import sizing
from deployer.bundle.prefect_yaml import DeploymentSpec
from deployer.errors import NotFound, Problem, UpstreamError
from deployer.models import PER_RUN_QUEUE
from deployer.ports.agents import AgentInfo, AgentSpec, AgentState, Role
from deployer.ports.images import BuildProgress, BuildState, Image, ManifestInfo
from deployer.ports.orchestrator import (
    SMOKE_TAG,
    DueRun,
    Readiness,
    RunLog,
    RunRef,
    refuse_unknown,
)
from deployer.ports.storage import BundleInfo
from deployer.preflight import CHECK_FLOW

EPOCH = datetime(2026, 1, 1, tzinfo=UTC)


class FakeBundleStore:
    def __init__(self) -> None:
        self.blobs: dict[str, tuple[bytes, str, dict[str, str]]] = {}
        self._n = 0

    def upload(self, name: str, data: IO[bytes], metadata: dict[str, str]) -> BundleInfo:
        self._n += 1
        self.blobs[name] = (data.read(), f'"etag-{self._n}"', dict(metadata))
        return self.info(name)  # type: ignore[return-value]

    def open(self, name: str) -> tuple[BundleInfo, Iterator[bytes]]:
        info = self.info(name)
        if info is None:
            raise NotFound(f"download bundle {name}: not found")
        data = self.blobs[name][0]
        return info, iter([data[i:i + 4096] for i in range(0, len(data), 4096)] or [b""])

    def info(self, name: str) -> BundleInfo | None:
        if name not in self.blobs:
            return None
        data, etag, meta = self.blobs[name]
        return BundleInfo(name, etag, len(data), datetime.now(UTC), meta)

    def list(self, prefix: str = "") -> list[BundleInfo]:
        return [i for n in sorted(self.blobs) if n.startswith(prefix) if (i := self.info(n))]

    def delete(self, name: str) -> None:
        self.blobs.pop(name, None)

    def put(self, name: str, data: bytes, metadata: dict[str, str] | None = None) -> BundleInfo:
        return self.upload(name, io.BytesIO(data), metadata or {})


@dataclass
class QueuedMessage:
    id: str
    body: bytes
    visible_at: datetime
    dequeue_count: int = 0


class FakeQueue:
    """A storage queue on a (simulated) clock: messages become visible after their delay."""

    def __init__(self, clock: Callable[[], datetime] | None = None) -> None:
        self.clock = clock or (lambda: datetime.now(UTC))
        self.sent: list[bytes] = []
        self.delays: list[int] = []
        self.messages: list[QueuedMessage] = []
        self.poison: list[bytes] = []
        self._ids = 0

    def send(self, body: bytes, *, delay_seconds: int = 0) -> None:
        assert 0 <= delay_seconds <= 7 * 24 * 3600, "Azure queues delay a message at most 7 days"
        self._ids += 1
        self.sent.append(body)
        self.delays.append(delay_seconds)
        self.messages.append(QueuedMessage(f"m{self._ids}", body,
                                           self.clock() + timedelta(seconds=delay_seconds)))

    def take(self) -> QueuedMessage | None:
        """The message visible first (it may not be visible yet), removed from the queue."""
        if not self.messages:
            return None
        message = min(self.messages, key=lambda m: (m.visible_at, int(m.id[1:])))
        self.messages.remove(message)
        message.dequeue_count += 1
        return message

    def put_back(self, message: QueuedMessage, delay_seconds: float) -> None:
        message.visible_at = self.clock() + timedelta(seconds=delay_seconds)
        self.messages.append(message)


class FakeImageBuilder:
    expected_build_seconds = 8.0

    def __init__(self) -> None:
        self.images: dict[tuple[str, str], Image] = {}
        self.builds: list[tuple[str, str]] = []
        self.fail_with: Exception | None = None  # raised by start_build (a transient fault)
        self.fails: BuildProgress | None = None  # what build_status reports for a failed build
        self.looks_to_build = 0  # build_status reports running this many times first
        self.status_looks: list[str] = []
        self.on_build: Callable[[], None] | None = None
        self.created: dict[str, datetime] = {}  # digest -> push time
        self.deleted: list[tuple[str, str]] = []

    def find(self, module: str, code_digest: str) -> Image | None:
        return self.images.get((module, code_digest))

    def resolve(self, module: str, reference: str) -> Image | None:
        """By the recorded ref, by ``...@<digest>`` or by ``...:<tag>``, like a registry."""
        name, _, digest = reference.partition("@")
        for (mod, _), image in self.images.items():
            if mod != module:
                continue
            if reference == image.ref or (digest and digest == image.digest) or \
                    (not digest and name.rpartition(":")[2] == image.ref.rpartition(":")[2]):
                return image
        return None

    def image_modules(self) -> list[str]:
        return sorted({m for (m, _) in self.images})

    def manifests(self, module: str) -> list[ManifestInfo]:
        return [ManifestInfo(m, image.digest, (image.ref.rpartition(":")[2],), self.created.get(image.digest, EPOCH))
                for (m, _), image in self.images.items() if m == module]

    def delete_tag(self, module: str, tag: str) -> None:
        self.deleted.append((module, tag))
        for key, image in list(self.images.items()):
            if key[0] == module and image.ref.endswith(f":{tag}"):
                del self.images[key]

    def delete_manifest(self, module: str, digest: str) -> None:
        self.deleted.append((module, digest))
        for key, image in list(self.images.items()):
            if key[0] == module and image.digest == digest:
                del self.images[key]

    def start_build(self, module: str, code_digest: str, source: Path) -> str:
        assert (source / "requirements.txt").is_file()
        if self.fail_with is not None:
            raise self.fail_with
        self.builds.append((module, code_digest))
        if self.on_build is not None:
            self.on_build()
        return f"run-{len(self.builds)}"

    def build_status(self, module: str, code_digest: str, build_id: str) -> BuildProgress:
        self.status_looks.append(build_id)
        if self.fails is not None:
            return self.fails
        if self.status_looks.count(build_id) <= self.looks_to_build:
            return BuildProgress(BuildState.RUNNING, detail="Running")
        image = Image(ref=f"registry/{module}:{code_digest[7:19]}", working_dir=f"/opt/prefect/flows/{module}",
                      digest=f"sha256:{code_digest[7:19]:0<64}")
        self.images[(module, code_digest)] = image
        return BuildProgress(BuildState.SUCCEEDED, image)


class FakeCodeStore:
    """A code store with state: which codes are published. ``capable``: whether modules' images
    can pull code from it (else every change takes the image path, as without prefect-azure)."""

    def __init__(self, capable: bool = False) -> None:
        self.capable = capable
        self.stored: dict[tuple[str, str], dict[str, bytes]] = {}
        self.originals: dict[tuple[str, str], dict[str, bytes]] = {}
        self.published: list[tuple[str, str]] = []
        #: check requests waiting for agents' warm checkers: (agent, request) -> (pull, entrypoints)
        self.checks: dict[tuple[str, str], tuple[list[dict[str, Any]], list[tuple[str, str]]]] = {}
        self.asked: list[tuple[str, str]] = []
        #: who answers them (the agent runtime's fake, as the agent's checker would)
        self.on_check: Callable[[str, str, list[dict[str, Any]], list[tuple[str, str]]], None] | None = None

    def requirement(self, requirements: bytes) -> str | None:
        return None if self.capable else "code-only changes deploy the slow way (no code store here)"

    def publish(self, module: str, code_digest: str, source: Path) -> bool:
        key = (module, code_digest[7:19])
        if key in self.stored and not self.verify(module, code_digest):
            return False
        files = {str(p.relative_to(source)): p.read_bytes() for p in source.rglob("*")
                 if p.is_file() and p.name != ".env"}
        files["_deployer_check.py"] = CHECK_FLOW.encode()
        self.stored[key] = files
        self.originals[key] = dict(files)
        self.published.append(key)
        return True

    def verify(self, module: str, code_digest: str) -> list[str]:
        key = (module, code_digest[7:19])
        if key not in self.stored:
            return ["the code is missing from the code store"]
        stored, original = self.stored[key], self.originals[key]
        return [f"{path}: altered: its content is not the published one" for path in sorted(original)
                if path in stored and stored[path] != original[path]] + \
            [f"{path}: missing" for path in sorted(set(original) - set(stored))] + \
            [f"{path}: added: it is not part of this code" for path in sorted(set(stored) - set(original))]

    def tamper(self, module: str, code_digest: str, path: str, content: bytes | None) -> None:
        """What someone with write access to the store does: change, add or (None) delete."""
        files = self.stored[(module, code_digest[7:19])]
        if content is None:
            files.pop(path)
        else:
            files[path] = content

    def exists(self, module: str, code_digest: str) -> bool:
        return (module, code_digest.split(":")[-1][:12]) in self.stored

    def pull_steps(self, module: str, code_digest: str, revision_id: str) -> list[dict[str, Any]]:
        return [{"deployer.verify": {"digest": code_digest, "revision": revision_id}},
                {"prefect.deployments.steps.set_working_directory":
                 {"directory": f"/code/{module}/{code_digest.split(':')[-1][:12]}"}}]

    def check_channel(self, agent: str) -> dict[str, Any]:
        return {"kind": "fake", "agent": agent}

    def ask_check(self, agent: str, request_id: str, pull_steps: list[dict[str, Any]],
                  entrypoints: list[tuple[str, str]]) -> None:
        self.checks[(agent, request_id)] = (pull_steps, list(entrypoints))
        self.asked.append((agent, request_id))
        if self.on_check is not None:
            self.on_check(agent, request_id, pull_steps, list(entrypoints))

    def end_check(self, agent: str, request_id: str) -> None:
        self.checks.pop((agent, request_id), None)

    def codes(self, module: str) -> list[str]:
        return sorted(code for (m, code) in self.stored if m == module)

    def delete(self, module: str, code_digest: str) -> None:
        self.stored.pop((module, code_digest.split(":")[-1][:12]), None)


@dataclass
class FakeAgent:
    spec: AgentSpec
    state: AgentState = AgentState.RUNNING
    started_at: datetime = field(default_factory=lambda: datetime.now(UTC))


class FakeAgentRuntime:
    expected_start_seconds = 2.0

    def __init__(self) -> None:
        self.agents: dict[str, FakeAgent] = {}
        self.started: list[str] = []
        self.started_specs: list[AgentSpec] = []
        self.stopped: list[str] = []
        self.on_start: Callable[[AgentSpec], None] | None = None
        #: what an agent's preflight reports, per deployment (``deployer.preflight``): by
        #: default every entrypoint loads; a function of the spec can say otherwise
        self.preflight: Callable[[AgentSpec], list[dict[str, Any]]] = lambda spec: [
            {"deployment": name, "ok": True} for name, _ in spec.entrypoints]
        #: what an agent's warm checker finds when asked (``preflight.CHECKER``): every
        #: entrypoint loads by default; agents in ``silent`` never answer (a dead checker)
        self.code_check: Callable[[list[dict[str, Any]], list[tuple[str, str]]], list[dict[str, Any]]] = \
            lambda pull, entrypoints: [{"deployment": name, "ok": True} for name, _ in entrypoints]
        self.silent: set[str] = set()
        self.answers: dict[str, list[str]] = {}

    def start(self, spec: AgentSpec) -> AgentInfo:
        if spec.name in self.agents:
            return self._info(self.agents[spec.name])
        self.agents[spec.name] = FakeAgent(spec)
        self.started.append(spec.name)
        self.started_specs.append(spec)
        if self.on_start is not None:
            self.on_start(spec)
        return self._info(self.agents[spec.name])

    def get(self, name: str) -> AgentInfo | None:
        agent = self.agents.get(name)
        return self._info(agent) if agent else None

    def list(self, module: str | None = None, *, detailed: bool = True,
             role: Role = Role.AGENT) -> list[AgentInfo]:
        return [self._info(a) for n, a in sorted(self.agents.items())
                if (module is None or a.spec.module == module) and a.spec.role is role]

    def stop(self, name: str) -> None:
        if self.agents.pop(name, None) is not None:
            self.stopped.append(name)

    def logs(self, name: str, tail: int = 50) -> str:
        import json

        agent = self.agents.get(name)
        if agent is None:
            return ""
        lines = [f"log of {name}", *self.answers.get(name, [])]
        if agent.spec.entrypoints:
            lines.insert(0, "DEPLOYER-PREFLIGHT " + json.dumps(self.preflight(agent.spec)))
        return "\n".join(lines[-tail:])

    def answer_check(self, agent: str, request_id: str, pull: list[dict[str, Any]],
                     entrypoints: list[tuple[str, str]]) -> None:
        """What a running agent's warm checker prints when asked (only an agent started with a
        checker channel has one)."""
        import json

        running = self.agents.get(agent)
        if running is None or not running.spec.checks or agent in self.silent \
                or running.state is not AgentState.RUNNING:
            return
        results = self.code_check(pull, entrypoints)
        self.answers.setdefault(agent, []).append(f"DEPLOYER-CHECK {request_id} {json.dumps(results)}")

    def kill(self, name: str) -> None:
        """The agent's process dies (it stays listed, as a stopped agent)."""
        self.agents[name].state = AgentState.STOPPED

    def running(self, module: str | None = None) -> list[str]:
        return [a.name for a in self.list(module) if a.state is AgentState.RUNNING]

    @staticmethod
    def _info(agent: FakeAgent) -> AgentInfo:
        s = agent.spec
        return AgentInfo(s.name, s.module, s.revision_id, s.queue, agent.state, agent.started_at,
                         role=s.role, flow_run_id=s.flow_run_id)


@dataclass
class FakeRun:
    id: str
    name: str
    queue: str
    state: str  # SCHEDULED | PENDING | RUNNING | COMPLETED | CRASHED ...
    deployment: str = ""
    finishes_at: datetime | None = None  # a RUNNING run ends by itself then (simulated) ...
    final_state: str = "COMPLETED"  # ... in this state
    started_at: datetime | None = None
    tags: tuple[str, ...] = ()
    version: str = ""
    message: str = ""
    logs: list[RunLog] = field(default_factory=list)
    run_count: int = 0
    infrastructure: str = ""  # who claimed it (``claim``)


class FakeOrchestrator:
    def __init__(self, runtime: FakeAgentRuntime | None = None,
                 live: Callable[[str], set[str]] | None = None,
                 clock: Callable[[], datetime] | None = None) -> None:
        self.clock = clock or (lambda: datetime.now(UTC))
        self.pools: set[str] = set()
        self.pool_queues: dict[str, dict[str, bool]] = {}  # pool -> queue -> paused
        self.online: set[str] = set()
        self.deployments: dict[tuple[str, str], dict[str, Any]] = {}  # (pool, name) -> details
        self.runs: dict[str, FakeRun] = {}
        self.runtime = runtime  # when given, running agents show ONLINE (like real workers)
        self.live = live  # or: a function naming the pool's workers that run (e.g. fake ACI)
        self.fail_next: dict[str, Exception] = {}
        self.never_online: set[str] = set()  # agents whose worker never shows ONLINE
        self.never_ready: set[str] = set()  # queues Prefect never reports READY
        self.run_seconds = 2.0  # how long a run started by start_run takes (simulated)
        self.run_ends = "COMPLETED"  # and how it ends
        #: what a code check run finds (``deployer.preflight``): every entrypoint loads by default
        self.code_check: Callable[[Sequence[dict[str, Any]], Sequence[tuple[str, str]]], list[dict[str, Any]]] = \
            lambda pull, entrypoints: [{"deployment": name, "ok": True} for name, _ in entrypoints]
        self.code_checks: list[tuple[str, str, list[dict[str, Any]]]] = []
        self._keys: dict[str, str] = {}  # idempotency key -> run id
        self.calls: list[str] = []
        self._ids = 0

    def _call(self, name: str) -> None:
        self.calls.append(name)
        if name in self.fail_next:
            raise self.fail_next.pop(name)

    def ensure_pool(self, pool: str) -> None:
        self._call("ensure_pool")
        self.pools.add(pool)
        self.pool_queues.setdefault(pool, {})

    def ensure_queue(self, pool: str, queue: str) -> None:
        self._call("ensure_queue")
        self.pool_queues.setdefault(pool, {}).setdefault(queue, False)

    def online_workers(self, pool: str) -> set[str]:
        self._call("online_workers")
        live = set(self.runtime.running(pool)) if self.runtime else set()
        if self.live is not None:
            live |= self.live(pool)
        return (self.online | live) - self.never_online

    def conflicts(self, pool: str, deployments: Sequence[DeploymentSpec]) -> list[Problem]:
        self._call("conflicts")
        return [Problem("prefect.yaml", spec.line, f"deployment {spec.flow_name}/{spec.name} already "
                        f"belongs to work pool {other!r} (module {other})")
                for spec in deployments for (other, name), d in self.deployments.items()
                if other != pool and name == spec.name and d["flow"] == spec.flow_name]

    def register(self, pool: str, queue: str, deployments: Sequence[DeploymentSpec],
                 pull_steps: Sequence[dict[str, Any]], revision_id: str,
                 image: str = "") -> list[str]:
        self._call("register")
        names = {d.name for d in deployments}
        removed = sorted(n for (p, n) in self.deployments if p == pool and n not in names)
        for name in removed:
            del self.deployments[(pool, name)]
        directory = next((step["prefect.deployments.steps.set_working_directory"]["directory"]
                          for step in pull_steps if "prefect.deployments.steps.set_working_directory" in step), "")
        for run in [r for r in self.runs.values() if r.state == "SCHEDULED" and r.version != revision_id
                    and r.deployment in names and (pool, r.deployment) in self.deployments]:
            del self.runs[run.id]  # re-created at the revision it will run (see the port)
            self.add_run(queue, "SCHEDULED", name=run.name, deployment=run.deployment,
                         tags=run.tags, version=revision_id)
        for spec in deployments:
            self.deployments[(pool, spec.name)] = {"queue": queue, "working_dir": directory,
                                                   "pull_steps": [dict(s) for s in pull_steps],
                                                   "revision": revision_id, "flow": spec.flow_name,
                                                   "schema": spec.openapi_schema,
                                                   "job_variables": {**sizing.job_variables(spec), **(
                                                       {"image": image} if image else {})}}
        return removed

    # -- the dispatcher's calls (``isolation: run``) ----------------------------------------------

    def due_runs(self, queue: str, before: datetime, pools: Sequence[str],
                 limit: int = 50) -> list[DueRun]:
        """Every SCHEDULED run of such a queue is due (the fake keeps no start times)."""
        self._call("due_runs")
        self._advance()
        out = []
        for run in self.runs.values():
            if run.queue != queue or run.state not in ("SCHEDULED", "PENDING", "RUNNING"):
                continue
            pool, found = next(((p, d) for (p, n), d in self.deployments.items()
                                if n == run.deployment), ("", {}))
            if pool not in pools:
                continue
            out.append(DueRun(run.id, run.name, pool, run.version, run.state,
                              dict(found.get("job_variables") or {}), run.started_at,
                              run.run_count, run.infrastructure,
                              self.pool_queues.get(pool, {}).get(queue, False)))
        return out[:limit]

    def claim(self, run_id: str, marker: str) -> bool:
        self._call("claim")
        run = self.runs.get(run_id)
        if run is None or run.state != "SCHEDULED":
            return False
        run.state, run.infrastructure = "PENDING", marker
        return True

    def runs_now(self, run_ids: Sequence[str]) -> dict[str, RunRef]:
        self._call("runs_now")
        self._advance()
        return {i: RunRef(r.id, r.name, r.state, r.deployment, r.version, r.message)
                for i in run_ids if (r := self.runs.get(i)) is not None}

    def mark_cancelled(self, run_ids: Sequence[str], message: str) -> list[str]:
        self._call("mark_cancelled")
        for run_id in run_ids:
            if run_id in self.runs:
                self.runs[run_id].state = "CANCELLED"
                self.runs[run_id].message = message
        return list(run_ids)

    def start_code_check(self, pool: str, queue: str, pull_steps: Sequence[dict[str, Any]],
                         entrypoints: Sequence[tuple[str, str]], *, idempotency_key: str) -> RunRef:
        """The check run ends ``run_seconds`` later: FAILED with the preflight line in its message
        when ``code_check`` says a flow does not load, else COMPLETED."""
        import json

        self._call("start_code_check")
        if idempotency_key in self._keys:
            return self.run_status(self._keys[idempotency_key])
        self.code_checks.append((pool, queue, [dict(s) for s in pull_steps]))
        results = self.code_check(pull_steps, entrypoints)
        run = self.add_run(queue, "RUNNING", name=f"check-{len(self.code_checks)}", tags=(SMOKE_TAG,))
        run.finishes_at = self.clock() + timedelta(seconds=self.run_seconds)
        if not all(r["ok"] for r in results):
            run.final_state = "FAILED"
            run.message = "Flow run encountered an exception: RuntimeError: DEPLOYER-PREFLIGHT " + json.dumps(results)
        self._keys[idempotency_key] = run.id
        return RunRef(run.id, run.name, run.state)

    def finish_code_check(self, pool: str) -> None:
        self._call("finish_code_check")

    def pause_queue(self, pool: str, queue: str) -> None:
        self._call("pause_queue")
        if queue in self.pool_queues.get(pool, {}):
            self.pool_queues[pool][queue] = True

    def resume_queue(self, pool: str, queue: str) -> None:
        self._call("resume_queue")
        if queue in self.pool_queues.get(pool, {}):
            self.pool_queues[pool][queue] = False

    def readiness(self, pool: str, queue: str, deployments: Sequence[DeploymentSpec]) -> Readiness:
        """A queue is READY while a live worker polls it (its agent runs) and it is not paused;
        a deployment on it is READY with it."""
        self._call("readiness")
        queues = self.pool_queues.get(pool, {})
        if queue not in queues:
            status = "missing"
        elif queues[queue]:
            status = "PAUSED"
        elif queue in self.online_workers(pool) and queue not in self.never_ready:
            status = "READY"
        else:
            status = "NOT_READY"
        found = {}
        for spec in deployments:
            d = self.deployments.get((pool, spec.name))
            found[spec.name] = "missing" if d is None else (
                "elsewhere" if d["queue"] != queue else ("READY" if status == "READY" else "NOT_READY"))
        return Readiness(status, found)

    def finished_runs(self, pool: str, queue: str, since: datetime, limit: int = 50) -> list[RunRef]:
        self._call("finished_runs")
        self._advance()
        final = ("COMPLETED", "FAILED", "CRASHED", "CANCELLED")
        runs = [r for r in self.runs.values() if r.queue == queue and r.state in final
                and r.started_at is not None and r.started_at >= since and SMOKE_TAG not in r.tags]
        runs.sort(key=lambda r: r.started_at or since, reverse=True)
        return [RunRef(r.id, r.name, r.state, r.deployment, r.version) for r in runs[:limit]]

    def rehome_scheduled(self, pool: str, from_queue: str, to_queue: str) -> list[tuple[str, str]]:
        self._call("rehome_scheduled")
        moved = []
        for run in list(self.runs.values()):
            if run.queue == from_queue and run.state == "SCHEDULED":
                new = self.add_run(to_queue, "SCHEDULED", name=run.name, deployment=run.deployment)
                del self.runs[run.id]
                moved.append((run.id, new.id))
        return moved

    def _advance(self) -> None:
        for run in self.runs.values():
            if run.finishes_at is not None and run.state == "RUNNING" and run.finishes_at <= self.clock():
                run.state = run.final_state
                self.log(run.id, f"Finished in state {run.state.title()}()",
                         "INFO" if run.state == "COMPLETED" else "ERROR", at=run.finishes_at)

    def in_flight(self, pool: str, queue: str) -> list[RunRef]:
        self._call("in_flight")
        self._advance()
        return [RunRef(r.id, r.name, r.state) for r in self.runs.values()
                if r.queue == queue and r.state in ("PENDING", "RUNNING", "CANCELLING", "PAUSED")]

    def mark_crashed(self, run_ids: Sequence[str], message: str) -> list[str]:
        self._call("mark_crashed")
        changed = []
        for run_id in run_ids:
            run = self.runs.get(run_id)
            if run and run.state not in ("COMPLETED", "FAILED", "CRASHED", "CANCELLED"):
                run.state = "CRASHED"
                run.message = message
                changed.append(run_id)
        return changed

    def delete_queue(self, pool: str, queue: str) -> None:
        self._call("delete_queue")
        self.pool_queues.get(pool, {}).pop(queue, None)

    def queues(self, pool: str) -> dict[str, int]:
        waiting = ("SCHEDULED", "PENDING", "RUNNING", "CANCELLING", "PAUSED")
        return {q: sum(1 for r in self.runs.values() if r.queue == q and r.state in waiting)
                for q in self.pool_queues.get(pool, {})}

    def versions(self, pool: str) -> dict[str, str]:
        self._call("versions")
        return {f"{d['flow']}/{name}": d["revision"] for (p, name), d in self.deployments.items() if p == pool}

    def start_run(self, flow_name: str, deployment: str,
                  parameters: dict[str, Any] | None = None, *, idempotency_key: str = "",
                  tags: Sequence[str] = ()) -> RunRef:
        """The run starts at once on the deployment's queue and ends ``run_seconds`` later as
        ``run_ends`` says (as a worker polling that queue would run it)."""
        self._call("start_run")
        if idempotency_key and idempotency_key in self._keys:
            return self.run_status(self._keys[idempotency_key])
        found = [d for (_, n), d in self.deployments.items() if n == deployment and d["flow"] == flow_name]
        if not found:
            raise NotFound(f"no deployment {flow_name}/{deployment} in Prefect")
        refuse_unknown(f"{flow_name}/{deployment}", found[0].get("schema"), parameters or {})
        # no worker polls the per-run queue: its runs wait for the dispatcher (``started``)
        waits = found[0]["queue"] == PER_RUN_QUEUE
        run = self.add_run(found[0]["queue"], "SCHEDULED" if waits else "RUNNING",
                           deployment=deployment, tags=tuple(tags), version=found[0]["revision"])
        if not waits:
            self.started(run.id)
        run.final_state = self.run_ends
        if idempotency_key:
            self._keys[idempotency_key] = run.id
        return RunRef(run.id, run.name, run.state, deployment, run.version)

    def started(self, run_id: str) -> None:
        """A process took the run (a worker, or its own container): it ends ``run_seconds``
        later as ``run_ends`` says."""
        run = self.runs.get(run_id)
        if run is not None and run.state in ("SCHEDULED", "PENDING", "RUNNING"):
            run.state = "RUNNING"
            run.finishes_at = self.clock() + timedelta(seconds=self.run_seconds)

    def run_status(self, run_id: str) -> RunRef:
        self._advance()
        run = self.runs.get(run_id)
        if run is None:
            raise NotFound(f"no flow run {run_id} in Prefect")
        return RunRef(run.id, run.name, run.state, run.deployment, run.version,
                      run.message if run.state == run.final_state else "")

    def successor(self, run: RunRef) -> RunRef | None:
        self._call("successor")
        others = [r for r in self.runs.values() if r.name == run.name and r.id != run.id
                  and r.deployment == run.deployment]
        if not others:
            return None
        latest = others[-1]  # runs are kept in the order they were made
        return self.run_status(latest.id)

    def run_logs(self, run_id: str, since: datetime | None = None, limit: int = 200) -> list[RunLog]:
        self._advance()
        found = sorted((line for line in self.runs[run_id].logs if since is None or line.at >= since),
                       key=lambda line: line.at)
        return found[:limit]

    def log(self, run_id: str, message: str, level: str = "INFO", at: datetime | None = None) -> None:
        """A line the run logs (now, or stamped ``at``: it arrives late), as its flow would."""
        self._ids += 1
        self.runs[run_id].logs.append(RunLog(f"log-{self._ids}", at or self.clock(), level, message))

    def run_artifacts(self, run_id: str) -> list[str]:
        return []

    def add_run(self, queue: str, state: str, name: str = "", deployment: str = "",
                tags: tuple[str, ...] = (), version: str = "") -> FakeRun:
        self._ids += 1
        run = FakeRun(f"run-{self._ids}", name or f"run-{self._ids}", queue, state, deployment,
                      started_at=self.clock(), tags=tags, version=version)
        self.runs[run.id] = run
        return run


def transient(what: str = "Prefect API unreachable") -> UpstreamError:
    return UpstreamError(what)


def build_failure() -> BuildProgress:
    return BuildProgress(BuildState.FAILED, detail="pip install failed",
                         log_tail="ERROR: No matching distribution found for nope")



class FakeSecrets:
    """``SecretResolver`` in memory: the same answers as the Key Vault adapter on the fake Key
    Vault (tests/integration/test_secret_resolver_contract.py keeps them equal)."""

    def __init__(self) -> None:
        self.versions: dict[tuple[str, str], list[tuple[str, str]]] = {}  # (vault url, name) -> [(version, value)]
        self.forbidden: set[tuple[str, str]] = set()
        self.reads: list[tuple[str, str]] = []

    def set(self, vault: str, name: str, value: str) -> str:
        import uuid

        version = uuid.uuid4().hex
        self.versions.setdefault((f"https://{vault}.vault.azure.net", name), []).append((version, value))
        return version

    def _find(self, ref: Any) -> tuple[str, str]:
        from deployer.errors import SecretUnavailable

        key = (ref.vault_url, ref.name)
        self.reads.append((ref.name, ref.version))
        if key in self.forbidden:
            raise SecretUnavailable(f"read {ref}: the identity may not read it (403 Forbidden)")
        found = [v for v in self.versions.get(key, []) if not ref.version or v[0] == ref.version]
        if not found:
            raise SecretUnavailable(f"{ref}{' version ' + ref.version if ref.version else ''} does not exist")
        return found[-1]

    def latest_version(self, ref: Any) -> str:
        return self._find(ref.pinned(""))[0]

    def value(self, ref: Any) -> str:
        return self._find(ref)[1]
