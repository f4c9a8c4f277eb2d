"""The cleanup planner: pure. What exists and what the state says in, actions with reasons out.

Every listed thing gets an action: delete (with why) or keep (with why), so the report can say
why something survived. The rules, which DESIGN.md and docs/cleanup.md state in words:

containers of flow runs (``isolation: run``): deleted once ended (the dispatcher deletes them
           itself; these are the ones it missed); a revision check's, once its module is not being
           deployed or it ended;
agents     never the current agent, nor any agent of a module that is being deployed (it has an
           owner), nor an agent that drains its runs after a cutover, nor the new agent of a
           deploy that failed half-way through cutover;
           delete failed and terminated ones, superseded ones past the drain grace, and agents of
           modules the state does not know once past the orphan grace, except groups the old
           deploy.sh made (untagged) for such modules: those are live production, left alone.
images     never a digest or tag used by the current revision, by a kept agent's revision, by a
           revision inside the rollback window or among the last N, or by a request in progress;
           keep the newest N tags; delete the other tags, and untagged manifests (after an hour).
bundles,   the last K per module are kept, and bundles of revisions that can still be rolled back
records    to or are in progress; the rest older than the retention are deleted. Run records
           that are queued or running are never deleted.
queues     of pools of known modules not being deployed: a queue no listed agent polls, that no
           agent the state names (current or draining) polls either, with no run waiting in it.
anomalies  an agent the state says is current but the runtime does not list: reported, never a
           reason to delete its queue, its records or anything else (a runtime listing can be
           wrong: another DEPLOYER_HOME, a subscription or resource group misconfigured); and a
           serving revision whose copy in the code store is not its code (altered, partly or
           wholly deleted): reported with how to publish it again, never deleted.
code       (the code store) never the code of a revision kept by the rules for images, nor of
           a revision a registered deployment is at (what its next run pulls); all of a
           module's code stays while Prefect cannot say what its deployments are at, or one is
           at a revision the history does not know.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from deployer.bundle import module_from_blob_name
from deployer.bundle.digest import short
from deployer.models import (
    PER_RUN_QUEUE,
    HistoryEntry,
    ModuleState,
    Revision,
    RunRecord,
    RunStatus,
)
from deployer.ports.agents import AgentInfo, AgentState, Role
from deployer.ports.images import ManifestInfo, is_build_cache
from deployer.ports.storage import BundleInfo

UNTAGGED_MIN_AGE = timedelta(hours=1)  # an untagged manifest may be a push in progress
DEFAULT_QUEUE = "default"  # every Prefect pool has one; never ours to delete


@dataclass(frozen=True)
class Policy:
    keep_revisions: int
    rollback_window: timedelta
    retention: timedelta
    keep_records: int
    orphan_grace: timedelta
    drain_grace: timedelta


@dataclass(frozen=True)
class Inventory:
    now: datetime
    modules: dict[str, ModuleState]
    history: dict[str, list[HistoryEntry]]
    busy: frozenset[str]  # modules a request is rotating (an owner, or a step running now)
    agents: list[AgentInfo]
    manifests: dict[str, list[ManifestInfo]]
    bundles: list[BundleInfo]
    runs: list[RunRecord]
    queues: dict[str, dict[str, int]]  # pool -> queue -> runs not final
    reports: list[tuple[str, datetime]] = field(default_factory=list)  # cleanup reports
    codes: dict[str, list[str]] = field(default_factory=dict)  # module -> short code digests
    #: module -> deployment -> the revision it is registered at; a module missing here could
    #: not be asked (Prefect down): its code all stays
    deployed: dict[str, dict[str, str]] = field(default_factory=dict)
    #: module -> what is wrong with the serving revision's copy in the code store
    damaged: dict[str, tuple[str, ...]] = field(default_factory=dict)


@dataclass(frozen=True)
class Action:
    kind: str  # agent | container | manifest | tag | code | bundle | record | queue | report | anomaly
    module: str
    target: str
    delete: bool
    reason: str


def plan_cleanup(inv: Inventory, policy: Policy) -> list[Action]:
    actions = _agents(inv, policy)
    kept_agents = {a.target for a in actions if a.kind == "agent" and not a.delete}
    protected = _protected(inv, policy, kept_agents)
    actions += _images(inv, policy, protected)
    actions += _codes(inv, protected)
    actions += _bundles(inv, policy, protected)
    actions += _records(inv, policy)
    actions += _queues(inv, {a.target for a in actions if a.kind == "agent" and a.delete})
    actions += _reports(inv, policy)
    return _anomalies(inv) + actions


def _anomalies(inv: Inventory) -> list[Action]:
    listed = {a.name for a in inv.agents}
    return [Action("anomaly", module, state.agent.name, False,
                   f"the state says {state.agent.name} is the current agent of {module} (queue "
                   f"{state.agent.queue}), but the runtime does not list it: nothing of {module} "
                   "is deleted on that account. Check that this command sees the same runtime as "
                   f"the function app (settings, DEPLOYER_HOME), then `deployer status {module}`; "
                   f"if the agent is really gone, redeploy {module}")
            for module, state in sorted(inv.modules.items())
            if state.agent is not None and state.agent.name not in listed] + [
        Action("anomaly", module, f"code {short(state.current.code_digest)}", False,
               f"the code store's copy of revision {state.current.id} of {module} is not its code "
               f"({'; '.join(inv.damaged[module][:3])}): every run of it refuses to start. Upload "
               f"the same bundle again, or `deployer deploy --repair flows/{module}`, to publish "
               "it again")
        for module, state in sorted(inv.modules.items())
        if state.current is not None and inv.damaged.get(module)]


# -- agents -------------------------------------------------------------------------------------


def _half_cut_over(inv: Inventory) -> dict[str, str]:
    """Agents of deploys that failed in the middle of cutover: some deployments may point at
    them, so they stay until a redeploy or rollback settles the module (agent -> request)."""
    out = {}
    for record in inv.runs:
        if record.status is RunStatus.FAILED and record.stage("register") is not None:
            start = record.stage("start-agent")
            if start is not None and start.detail.get("agent"):
                out[start.detail["agent"]] = record.request_id
    return out


def _agents(inv: Inventory, policy: Policy) -> list[Action]:
    out = []
    half = _half_cut_over(inv)
    for agent in inv.agents:
        if agent.role is not Role.AGENT:
            out.append(_container(inv, agent))
            continue
        module, state = agent.module, inv.modules.get(agent.module)
        age = inv.now - agent.started_at if agent.started_at else None

        def act(delete: bool, reason: str, agent: AgentInfo = agent) -> Action:
            return Action("agent", agent.module, agent.name, delete, reason)

        if module in inv.busy:
            out.append(act(False, f"module {module} is being deployed"))
        elif state is not None and state.agent is not None and state.agent.name == agent.name:
            out.append(act(False, f"current agent of {module}"))
        elif state is not None and agent.name in {d.name for d in state.draining}:
            draining = next(d for d in state.draining if d.name == agent.name)
            out.append(act(False, f"draining since {draining.since:%Y-%m-%d %H:%M} UTC: its in-flight "
                                  f"runs finish first (deadline {draining.deadline:%Y-%m-%d %H:%M} UTC)"))
        elif agent.name in half and agent.state is AgentState.RUNNING:
            out.append(act(False, f"request {half[agent.name]} failed during cutover: deployments may "
                                  f"point at it; redeploy or roll back {module}"))
        elif state is None or state.current is None:
            if not agent.revision_id:
                out.append(act(False, f"made by the old deploy.sh for {module}, which the deployer "
                                      f"has not deployed yet: deploy {module} to adopt and retire it"))
            elif age is None or age >= policy.orphan_grace:
                out.append(act(True, f"orphaned: module {module} is not in the deployer's state"))
            else:
                out.append(act(False, "orphaned, but younger than the orphan grace"))
        elif agent.state is AgentState.FAILED:
            out.append(act(True, "failed"))
        elif agent.state is AgentState.STOPPED:
            out.append(act(True, "terminated"))
        elif age is not None and age < policy.drain_grace:
            out.append(act(False, f"superseded {int(age.total_seconds() // 60)} min ago; its "
                                  "deploy may still be retiring it"))
        else:
            current = state.agent.name if state.agent else "-"
            out.append(act(True, f"superseded by {current}"))
    return out


def _container(inv: Inventory, container: AgentInfo) -> Action:
    ended = container.state in (AgentState.STOPPED, AgentState.FAILED)
    if container.role is Role.RUN:
        return Action("container", container.module, container.name, ended, (
            f"flow run {container.flow_run_id}'s container ended ({container.detail}); the "
            "dispatcher did not remove it") if ended else f"running flow run {container.flow_run_id}")
    if container.module in inv.busy and not ended:
        return Action("container", container.module, container.name, False,
                      f"checking a revision of {container.module}, which is being deployed")
    return Action("container", container.module, container.name, True,
                  "a revision check's container left behind")


# -- what must stay -----------------------------------------------------------------------------


@dataclass
class Protected:
    digests: dict[str, set[str]] = field(default_factory=dict)  # module -> digests
    tags: dict[str, set[str]] = field(default_factory=dict)  # module -> tags
    bundles: dict[str, str] = field(default_factory=dict)  # bundle -> why
    codes: dict[tuple[str, str], str] = field(default_factory=dict)  # (module, short code) -> why
    why: dict[tuple[str, str], str] = field(default_factory=dict)  # (module, digest|tag) -> why

    def add(self, revision: Revision | None, why: str) -> None:
        if revision is None:
            return
        module = revision.module
        for key, value in (("digest", revision.image_digest), ("tag", _tag_of(revision.image)),
                           ("tag", short(revision.code_digest))):
            if value:
                (self.digests if key == "digest" else self.tags).setdefault(module, set()).add(value)
                self.why.setdefault((module, value), why)
        if revision.bundle:
            self.bundles.setdefault(revision.bundle, why)
        self.codes.setdefault((module, short(revision.code_digest)), why)


def _protected(inv: Inventory, policy: Policy, kept_agents: set[str]) -> Protected:
    p = Protected()
    for module, state in inv.modules.items():
        p.add(state.current, f"current revision of {module}")
    by_revision = {(e.module, e.revision.id): e.revision for h in inv.history.values() for e in h}
    for agent in inv.agents:
        if agent.name in kept_agents:
            p.add(by_revision.get((agent.module, agent.revision_id)), f"used by agent {agent.name}")
    for module, entries in inv.history.items():
        succeeded = [e for e in entries if e.outcome is RunStatus.SUCCEEDED]
        recent: list[str] = []
        for entry in reversed(succeeded):
            if entry.revision.id not in recent:
                recent.append(entry.revision.id)
            if len(recent) <= policy.keep_revisions:
                p.add(entry.revision, f"one of {module}'s last {policy.keep_revisions} revisions")
            if inv.now - entry.at <= policy.rollback_window:
                p.add(entry.revision, "inside the rollback window")
    for record in inv.runs:
        if not record.status.finished:
            p.add(record.revision, f"request {record.request_id} is in progress")
    for module, deployments in inv.deployed.items():
        for deployment, version in sorted(deployments.items()):
            p.add(by_revision.get((module, version)), f"deployment {deployment} is registered at it")
    return p


# -- images -------------------------------------------------------------------------------------


def _images(inv: Inventory, policy: Policy, p: Protected) -> list[Action]:
    out = []
    for module, manifests in inv.manifests.items():
        digests, tags = p.digests.get(module, set()), p.tags.get(module, set())
        ordered = sorted(manifests, key=lambda m: m.created_at, reverse=True)
        caches = [m for m in ordered if m.tags and all(is_build_cache(t) for t in m.tags)]
        out += [Action("manifest", module, m.digest, False, f"ACR Tasks' build cache ({', '.join(m.tags)}): "
                       "what makes the next build fast; each build replaces it") for m in caches]
        ordered = [m for m in ordered if m not in caches]
        newest = [t for m in ordered for t in m.tags if not is_build_cache(t)][: policy.keep_revisions]
        for manifest in ordered:
            reasons = [p.why[(module, k)] for k in (manifest.digest, *manifest.tags)
                       if k in digests or k in tags]
            if reasons:
                out.append(Action("manifest", module, manifest.digest, False, reasons[0]))
                out += [Action("tag", module, t, True, f"beyond {module}'s newest {policy.keep_revisions} "
                               "tags (the image stays for another tag)")
                        for t in manifest.tags if t not in tags and t not in newest]
            elif not manifest.tags:
                young = inv.now - manifest.created_at < UNTAGGED_MIN_AGE
                out.append(Action("manifest", module, manifest.digest, not young,
                                  "untagged, pushed less than an hour ago" if young else "untagged"))
            elif all(t not in newest for t in manifest.tags):
                out.append(Action("manifest", module, manifest.digest, True,
                                  f"beyond {module}'s last {policy.keep_revisions} revisions"))
            else:
                out.append(Action("manifest", module, manifest.digest, False,
                                  f"among {module}'s newest {policy.keep_revisions} tags"))
                out += [Action("tag", module, t, True, f"beyond {module}'s newest "
                               f"{policy.keep_revisions} tags") for t in manifest.tags if t not in newest]
    return out


# -- code ---------------------------------------------------------------------------------------


def _codes(inv: Inventory, p: Protected) -> list[Action]:
    out = []
    known = {(e.module, e.revision.id) for h in inv.history.values() for e in h}
    for module, codes in sorted(inv.codes.items()):
        deployed = inv.deployed.get(module)
        unknown = sorted(f"{d} (at {v or 'no version'})" for d, v in (deployed or {}).items()
                         if (module, v) not in known)
        for code in codes:
            if (module, code) in p.codes:
                out.append(Action("code", module, code, False, p.codes[(module, code)]))
            elif deployed is None:
                out.append(Action("code", module, code, False, "Prefect could not say what "
                                  f"{module}'s deployments pull: kept until it can"))
            elif unknown:
                out.append(Action("code", module, code, False, f"deployment {unknown[0]} is at a "
                                  "revision the deployer's history does not know"))
            else:
                out.append(Action("code", module, code, True, "no kept revision and no registered "
                                  "deployment uses it"))
    return out


# -- bundles, records, queues, reports ----------------------------------------------------------


def _bundles(inv: Inventory, policy: Policy, p: Protected) -> list[Action]:
    out = []
    for module, bundles in _by_module((module_from_blob_name(b.name), b) for b in inv.bundles).items():
        for index, bundle in enumerate(sorted(bundles, key=lambda b: b.last_modified, reverse=True)):
            if index < policy.keep_records:
                continue  # the newest K: kept without a word
            if bundle.name in p.bundles:
                out.append(Action("bundle", module, bundle.name, False, p.bundles[bundle.name]))
            elif inv.now - bundle.last_modified > policy.retention:
                out.append(Action("bundle", module, bundle.name, True, _older(policy)))
    return out


def _records(inv: Inventory, policy: Policy) -> list[Action]:
    out = []
    current = {state.request_id for state in inv.modules.values() if state.request_id}
    for module, records in _by_module((r.module, r) for r in inv.runs).items():
        for index, record in enumerate(sorted(records, key=lambda r: r.created_at, reverse=True)):
            if index < policy.keep_records or not record.status.finished:
                continue
            if record.request_id in current:
                continue  # the deploy of what serves now: kept as long as it serves
            if inv.now - record.created_at > policy.retention:
                out.append(Action("record", module, record.request_id, True, _older(policy)))
    return out


def _queues(inv: Inventory, deleted_agents: set[str]) -> list[Action]:
    live = {a.queue for a in inv.agents if a.name not in deleted_agents}
    named = {(module, agent.queue) for module, state in inv.modules.items()
             for agent in (state.agent, *state.draining) if agent is not None}
    out = []
    for pool, queues in inv.queues.items():
        if pool not in inv.modules or pool in inv.busy:
            continue  # not a pool the deployer made, or a deploy may be making a queue now
        for queue, waiting in sorted(queues.items()):
            if queue == DEFAULT_QUEUE or queue in live:
                continue
            state = inv.modules[pool]
            if queue == PER_RUN_QUEUE and state.current is not None and state.current.per_run:
                out.append(Action("queue", pool, queue, False, "its runs each get a container: "
                                  "the dispatcher serves it"))
                continue
            if (pool, queue) in named:
                out.append(Action("queue", pool, queue, False, "the state names its agent (current "
                                  "or draining), though the runtime does not list it"))
                continue
            if waiting:
                out.append(Action("queue", pool, queue, False, f"no agent polls it, but {waiting} "
                                  "run(s) still wait in it: redeploy or move them"))
            else:
                out.append(Action("queue", pool, queue, True, "its agent is gone"))
    return out


def _reports(inv: Inventory, policy: Policy) -> list[Action]:
    ordered = sorted(inv.reports, key=lambda r: r[1], reverse=True)
    return [Action("report", "", key, True, _older(policy)) for key, at in ordered[policy.keep_records:]
            if inv.now - at > policy.retention]


def _older(policy: Policy) -> str:
    return f"older than the retention ({policy.retention.days} days), beyond the newest {policy.keep_records}"


def _by_module(pairs: Iterable[tuple[str, object]]) -> dict[str, list[Any]]:
    out: dict[str, list[Any]] = {}
    for module, item in pairs:
        out.setdefault(module, []).append(item)
    return out


def _tag_of(ref: str) -> str:
    """The tag an image reference carries: ``repo:tag`` (registry) or ``.../<tag>`` (local path)."""
    if not ref or "@" in ref:
        return ""
    last = ref.rsplit("/", 1)[-1]
    return last.rsplit(":", 1)[1] if ":" in last else last
