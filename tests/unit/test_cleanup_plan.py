"""The cleanup planner, rule by rule, with plain data."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from deployer.cleanup.plan import Action, Inventory, Policy, plan_cleanup
from deployer.models import (
    AgentRef,
    DrainingAgent,
    HistoryEntry,
    ModuleState,
    RequestKind,
    Revision,
    RunRecord,
    RunStatus,
    Trigger,
)
from deployer.ports.agents import AgentInfo, AgentState
from deployer.ports.images import ManifestInfo
from deployer.ports.storage import BundleInfo

NOW = datetime(2026, 11, 28, 2, 0, tzinfo=UTC)
POLICY = Policy(keep_revisions=2, rollback_window=timedelta(days=3), retention=timedelta(days=30),
                keep_records=2, orphan_grace=timedelta(hours=24), drain_grace=timedelta(minutes=20))
SERVER = "acr.azurecr.io/prefect-flows"


def rev(n: int, module: str = "fin") -> Revision:
    code = f"sha256:{n:012d}" + "0" * 52
    return Revision(module, code, f"hmac-sha256:{n:08d}" + "0" * 56, image=f"{SERVER}/{module}:{n:012d}",
                    bundle=f"{module}/{n:04d}.tar.gz", image_digest=f"sha256:d{n:063d}")


def agent(name: str, module: str = "fin", revision: Revision | None = None, state: AgentState = AgentState.RUNNING,
          age: timedelta | None = timedelta(days=2), detail: str = "Succeeded") -> AgentInfo:
    return AgentInfo(name, module, revision.id if revision else "", name, state,
                     NOW - age if age is not None else None, detail)


def entry(revision: Revision, age: timedelta, outcome: RunStatus = RunStatus.SUCCEEDED) -> HistoryEntry:
    return HistoryEntry(revision.module, revision, f"req-{revision.id}", RequestKind.DEPLOY,
                        Trigger("blob", "x"), outcome, NOW - age)


def manifest(revision: Revision, age: timedelta, tags: tuple[str, ...] | None = None) -> ManifestInfo:
    return ManifestInfo(revision.module, revision.image_digest,
                        tags if tags is not None else (revision.image.rsplit(":", 1)[1],), NOW - age)


def inventory(**changes) -> Inventory:  # type: ignore[no-untyped-def]
    current = rev(5)
    base = dict(
        now=NOW,
        modules={"fin": ModuleState("fin", current=current, agent=AgentRef("agent-fin-5", current.id, "agent-fin-5", NOW))},
        history={"fin": [entry(rev(n), timedelta(days=40 - n * 5)) for n in range(1, 6)]},
        busy=frozenset(), agents=[agent("agent-fin-5", revision=current)], manifests={}, bundles=[], runs=[],
        queues={})
    base.update(changes)
    return Inventory(**base)  # type: ignore[arg-type]


def decisions(actions: list[Action], kind: str) -> dict[str, tuple[bool, str]]:
    return {a.target: (a.delete, a.reason) for a in actions if a.kind == kind}


# -- agents --------------------------------------------------------------------------------------


@pytest.mark.parametrize("extra,delete,reason", [
    (agent("agent-fin-4", revision=rev(4)), True, "superseded by agent-fin-5"),
    (agent("agent-fin-4", revision=rev(4), age=timedelta(minutes=5)), False, "may still be retiring it"),
    (agent("agent-fin-4", revision=rev(4), age=None), True, "superseded"),
    (agent("agent-fin-4", revision=rev(4), state=AgentState.FAILED, age=timedelta(minutes=1)), True, "failed"),
    (agent("agent-fin-4", revision=rev(4), state=AgentState.STOPPED, age=timedelta(minutes=1)), True, "terminated"),
    (agent("agent-old-1", module="old", revision=rev(1, "old")), True, "orphaned"),
    (agent("agent-old-1", module="old", revision=rev(1, "old"), age=timedelta(hours=2)), False, "younger than the orphan grace"),
    (agent("agent-mkt-20240101120000", module="mkt"), False, "made by the old deploy.sh"),
    (agent("agent-fin-20240101120000", module="fin"), True, "superseded"),
])
def test_agent_rules(extra: AgentInfo, delete: bool, reason: str) -> None:
    inv = inventory(agents=[agent("agent-fin-5", revision=rev(5)), extra])
    got = decisions(plan_cleanup(inv, POLICY), "agent")
    assert got["agent-fin-5"] == (False, "current agent of fin")
    assert got[extra.name][0] is delete and reason in got[extra.name][1]


def test_an_agent_that_drains_its_runs_is_kept_whatever_its_age() -> None:
    current = rev(5)
    draining = DrainingAgent("agent-fin-4", "agent-fin-4", rev(4).id, "req-5", NOW - timedelta(hours=30),
                             NOW + timedelta(hours=2))
    state = ModuleState("fin", current=current, agent=AgentRef("agent-fin-5", current.id, "agent-fin-5", NOW),
                        draining=(draining,))
    inv = inventory(modules={"fin": state}, agents=[agent("agent-fin-5", revision=current),
                                                   agent("agent-fin-4", revision=rev(4), age=timedelta(hours=30))])
    keep, reason = decisions(plan_cleanup(inv, POLICY), "agent")["agent-fin-4"]
    assert keep is False and "draining since" in reason and "deadline" in reason


def test_the_current_agent_is_kept_even_when_it_failed() -> None:
    inv = inventory(agents=[agent("agent-fin-5", revision=rev(5), state=AgentState.FAILED)])
    assert decisions(plan_cleanup(inv, POLICY), "agent") == {"agent-fin-5": (False, "current agent of fin")}


def test_nothing_of_a_module_in_rotation_is_deleted() -> None:
    inv = inventory(busy=frozenset({"fin"}), agents=[agent("agent-fin-5", revision=rev(5)),
                                                    agent("agent-fin-4", revision=rev(4), state=AgentState.FAILED)])
    assert {d for d, _ in decisions(plan_cleanup(inv, POLICY), "agent").values()} == {False}


def test_a_stopped_agent_is_deleted_again_which_is_harmless() -> None:
    # ARM has no documented "deleting" state: a group on its way out may still be listed, and a
    # second DELETE of it is idempotent
    inv = inventory(agents=[agent("agent-fin-5", revision=rev(5)),
                            agent("agent-fin-4", revision=rev(4), state=AgentState.STOPPED)])
    assert decisions(plan_cleanup(inv, POLICY), "agent")["agent-fin-4"] == (True, "terminated")


# -- images --------------------------------------------------------------------------------------


def test_tags_beyond_the_last_n_revisions_go_but_never_protected_ones() -> None:
    images = [manifest(rev(n), timedelta(days=40 - n * 5)) for n in range(1, 6)]
    history = {"fin": [entry(rev(1), timedelta(days=35)), entry(rev(2), timedelta(days=30)),
                       entry(rev(3), timedelta(days=25)), entry(rev(1), timedelta(days=2)),  # a rollback
                       entry(rev(4), timedelta(days=1)), entry(rev(5), timedelta(hours=1))]}
    got = decisions(plan_cleanup(inventory(manifests={"fin": images}, history=history), POLICY), "manifest")
    assert got[rev(5).image_digest] == (False, "current revision of fin")
    assert got[rev(4).image_digest] == (False, "one of fin's last 2 revisions")
    assert got[rev(1).image_digest] == (False, "inside the rollback window")
    assert got[rev(3).image_digest] == (True, "beyond fin's last 2 revisions")
    assert got[rev(2).image_digest][0] is True


def test_an_image_a_live_agent_runs_is_kept() -> None:
    images = [manifest(rev(n), timedelta(days=40 - n * 5)) for n in range(1, 6)]
    inv = inventory(manifests={"fin": images}, agents=[agent("agent-fin-5", revision=rev(5)),
                                                      agent("agent-fin-1", revision=rev(1), age=timedelta(minutes=3))])
    got = decisions(plan_cleanup(inv, POLICY), "manifest")
    assert got[rev(1).image_digest] == (False, "used by agent agent-fin-1")


def test_an_image_of_a_request_in_progress_is_kept() -> None:
    building = rev(9)
    record = RunRecord("req-9", RequestKind.DEPLOY, "fin", Trigger("blob", "x"), RunStatus.RUNNING, NOW, NOW,
                       revision=Revision("fin", building.code_digest, building.config_digest))
    images = [manifest(rev(5), timedelta(days=10)), manifest(building, timedelta(days=60))]
    got = decisions(plan_cleanup(inventory(manifests={"fin": images}, runs=[record]), POLICY), "manifest")
    assert got[building.image_digest] == (False, "request req-9 is in progress")


def test_untagged_manifests_go_after_an_hour_unless_pinned() -> None:
    pinned = Revision("fin", "sha256:" + "7" * 64, rev(5).config_digest, image=f"{SERVER}/fin@sha256:{'e' * 64}",
                      bundle="fin/7.tar.gz", image_digest=f"sha256:{'e' * 64}")
    state = ModuleState("fin", current=pinned, agent=AgentRef("agent-fin-5", pinned.id, "q", NOW))
    images = [ManifestInfo("fin", f"sha256:{'e' * 64}", (), NOW - timedelta(days=9)),
              ManifestInfo("fin", f"sha256:{'a' * 64}", (), NOW - timedelta(days=9)),
              ManifestInfo("fin", f"sha256:{'b' * 64}", (), NOW - timedelta(minutes=10))]
    got = decisions(plan_cleanup(inventory(modules={"fin": state}, manifests={"fin": images}), POLICY), "manifest")
    assert got[f"sha256:{'e' * 64}"][0] is False
    assert got[f"sha256:{'a' * 64}"] == (True, "untagged")
    assert got[f"sha256:{'b' * 64}"] == (False, "untagged, pushed less than an hour ago")


def test_extra_tags_on_a_protected_image_can_go() -> None:
    images = [manifest(rev(5), timedelta(days=1), tags=(f"{5:012d}", "old-a", "old-b")),
              manifest(rev(4), timedelta(hours=1), tags=(f"{4:012d}", "latest"))]
    actions = plan_cleanup(inventory(manifests={"fin": images}), POLICY)
    tags = decisions(actions, "tag")
    assert tags == {"old-a": (True, tags["old-a"][1]), "old-b": (True, tags["old-b"][1])}


# -- bundles, records, queues --------------------------------------------------------------------


def test_bundles_past_retention_go_unless_they_can_still_be_rolled_back_to() -> None:
    def bundle(name: str, age_days: int) -> BundleInfo:
        return BundleInfo(name, "e", 10, NOW - timedelta(days=age_days))

    bundles = [bundle(rev(n).bundle, 100 - n) for n in range(1, 6)] + [bundle("fin/stray.tar.gz", 200),
                                                                      bundle("fin/new.tar.gz", 1)]
    got = decisions(plan_cleanup(inventory(bundles=bundles), POLICY), "bundle")
    assert got["fin/stray.tar.gz"][0] is True
    assert got[rev(4).bundle][0] is False and got[rev(1).bundle][0] is True
    assert "fin/new.tar.gz" not in got and rev(5).bundle not in got  # the newest two: silently kept


def test_only_finished_records_past_retention_beyond_the_last_k_go() -> None:
    def record(n: int, age_days: int, status: RunStatus = RunStatus.SUCCEEDED) -> RunRecord:
        at = NOW - timedelta(days=age_days)
        return RunRecord(f"r{n}", RequestKind.DEPLOY, "fin", Trigger("blob", "x"), status, at, at)

    runs = [record(1, 90), record(2, 80, RunStatus.RUNNING), record(3, 70), record(4, 5), record(5, 1)]
    got = decisions(plan_cleanup(inventory(runs=runs), POLICY), "record")
    assert got == {"r1": (True, got["r1"][1]), "r3": (True, got["r3"][1])}


def test_queues_without_agents_go_when_empty_and_are_reported_when_not() -> None:
    inv = inventory(queues={"fin": {"default": 0, "agent-fin-5": 2, "agent-fin-3": 0, "agent-fin-2": 4},
                            "someone-elses-pool": {"q": 0}})
    got = decisions(plan_cleanup(inv, POLICY), "queue")
    assert got["agent-fin-3"] == (True, "its agent is gone")
    assert got["agent-fin-2"][0] is False and "4 run(s) still wait" in got["agent-fin-2"][1]
    assert set(got) == {"agent-fin-3", "agent-fin-2"}


def test_the_queue_of_an_agent_deleted_in_the_same_run_goes_too() -> None:
    inv = inventory(agents=[agent("agent-fin-5", revision=rev(5)), agent("agent-fin-4", revision=rev(4))],
                    queues={"fin": {"agent-fin-5": 0, "agent-fin-4": 0}})
    got = decisions(plan_cleanup(inv, POLICY), "queue")
    assert got == {"agent-fin-4": (True, "its agent is gone")}


def test_old_cleanup_reports_go() -> None:
    reports = [(f"cleanup/{n}.json", NOW - timedelta(days=n * 20)) for n in range(5)]
    got = decisions(plan_cleanup(inventory(reports=reports), POLICY), "report")
    assert set(got) == {"cleanup/2.json", "cleanup/3.json", "cleanup/4.json"}


def test_the_new_agent_of_a_deploy_that_failed_during_cutover_is_kept() -> None:
    from deployer.models import Stage, StageStatus

    failed = RunRecord("req-half", RequestKind.DEPLOY, "fin", Trigger("blob", "x"), RunStatus.FAILED, NOW, NOW,
                       revision=rev(6), stages=(
                           Stage("start-agent", StageStatus.DONE, NOW, NOW, {"agent": "agent-fin-6"}),
                           Stage("register", StageStatus.FAILED, NOW, NOW, {"error": "boom"})))
    inv = inventory(runs=[failed], agents=[agent("agent-fin-5", revision=rev(5)),
                                           agent("agent-fin-6", revision=rev(6))])
    got = decisions(plan_cleanup(inv, POLICY), "agent")
    assert got["agent-fin-6"][0] is False and "failed during cutover" in got["agent-fin-6"][1]


# -- code ----------------------------------------------------------------------------------------


def code(n: int) -> str:
    return f"{n:012d}"


def test_code_goes_unless_a_kept_revision_or_a_registered_deployment_uses_it() -> None:
    codes = {"fin": [code(n) for n in range(1, 6)]}
    deployed = {"fin": {"fin/hello": rev(5).id, "fin/nightly": rev(1).id}}  # e.g. a handback left one
    got = decisions(plan_cleanup(inventory(codes=codes, deployed=deployed), POLICY), "code")
    assert got[code(5)] == (False, "current revision of fin")
    assert got[code(4)] == (False, "one of fin's last 2 revisions")
    assert got[code(1)] == (False, "deployment fin/nightly is registered at it")
    assert got[code(2)] == (True, "no kept revision and no registered deployment uses it")
    assert got[code(3)][0] is True


def test_all_code_stays_while_prefect_cannot_say_what_the_deployments_pull() -> None:
    codes = {"fin": [code(n) for n in range(1, 6)]}
    got = decisions(plan_cleanup(inventory(codes=codes), POLICY), "code")
    assert not any(delete for delete, _ in got.values())
    assert "Prefect could not say" in got[code(2)][1]
    unknown = {"fin": {"fin/hello": rev(5).id, "fin/adhoc": "made-by-hand"}}
    got = decisions(plan_cleanup(inventory(codes=codes, deployed=unknown), POLICY), "code")
    assert not any(delete for delete, _ in got.values())
    assert "fin/adhoc (at made-by-hand)" in got[code(2)][1]


# -- absence it cannot explain ---------------------------------------------------------------------


def test_a_current_agent_the_runtime_does_not_list_is_an_anomaly_and_nothing_of_it_goes() -> None:
    current = rev(5)
    state = ModuleState("fin", current=current, request_id="r-current",
                        agent=AgentRef("agent-fin-5", current.id, "agent-fin-5", NOW),
                        draining=(DrainingAgent("agent-fin-4", "agent-fin-4", rev(4).id, "r-current",
                                                NOW - timedelta(hours=1), NOW + timedelta(hours=23)),))
    at = NOW - timedelta(days=90)
    records = [RunRecord(f"r{n}", RequestKind.DEPLOY, "fin", Trigger("blob", "x"), RunStatus.SUCCEEDED, at, at)
               for n in range(4)]
    current_record = RunRecord("r-current", RequestKind.DEPLOY, "fin", Trigger("blob", "x"), RunStatus.SUCCEEDED,
                               at - timedelta(days=1), at)
    inv = inventory(modules={"fin": state}, agents=[],  # e.g. run with another DEPLOYER_HOME
                    queues={"fin": {"agent-fin-5": 0, "agent-fin-4": 0, "agent-fin-3": 0}},
                    runs=[*records, current_record])
    actions = plan_cleanup(inv, POLICY)
    [anomaly] = [a for a in actions if a.kind == "anomaly"]
    assert (anomaly.module, anomaly.target, anomaly.delete) == ("fin", "agent-fin-5", False)
    assert "the runtime does not list it" in anomaly.reason and "DEPLOYER_HOME" in anomaly.reason
    queues = decisions(actions, "queue")
    assert queues["agent-fin-5"][0] is False and queues["agent-fin-4"][0] is False
    assert queues["agent-fin-3"] == (True, "its agent is gone")  # no one names it: it goes as before
    assert "r-current" not in {a.target for a in actions if a.kind == "record" and a.delete}


def test_a_module_being_deployed_keeps_its_queues() -> None:
    inv = inventory(busy=frozenset({"fin"}), queues={"fin": {"agent-fin-6": 0}})
    assert decisions(plan_cleanup(inv, POLICY), "queue") == {}
