"""The CLI in the daily loop, in-process on a world of fakes (``main(argv, services=...)``):
what a deploy's outcome says (live, then baking), history that fits a terminal and whose request
ids lead somewhere, and clear refusals."""

from __future__ import annotations

from dataclasses import replace

from deployer.models import RunStatus
from tests.unit.pipeline_world import World

BROKEN = {"flow.py": "from prefect import flow\nimport missing_module_xyz\n\n@flow(name='demo')\ndef hello():\n    pass\n"}


def test_history_fits_a_100_column_terminal_and_says_when_each_revision_went_live(world: World, cli) -> None:  # type: ignore[no-untyped-def]
    world.services.settings = replace(world.services.settings, bake_seconds=600, bake_runs=3)
    first = world.run(world.request())
    world.runtime.preflight = lambda spec: [{"deployment": "hello", "ok": False, "entrypoint": "flow.py:hello",
                                             "exception": "ModuleNotFoundError", "file": "flow.py", "line": 2,
                                             "message": "No module named 'missing_module_xyz' (and a long tail of words)"}]
    failed = world.run(world.request({".env": "GREETING=x\n"}))
    assert first.status is RunStatus.SUCCEEDED and failed.status is RunStatus.FAILED
    code, out, _ = cli("history", "demo")
    assert code == 0 and all(len(line) <= 100 for line in out.splitlines()), out
    assert first.request_id[:8] in out and failed.request_id[:8] in out
    assert "live" in out and "baked" in out
    assert "missing_module_xyz" in out.replace("\n", "").replace("│", "").replace(" ", "")  # whole, folded not cut
    [entry, broken] = world.state.history("demo")
    assert entry.live_after is not None and broken.live_after is None  # the failed one never went live


def test_a_short_request_id_from_status_or_history_finds_its_request(world: World, cli) -> None:  # type: ignore[no-untyped-def]
    record = world.run(world.request())
    code, out, _ = cli("logs", "demo", "--request", record.request_id[:8])
    assert code == 0 and record.request_id in out and "plan" in out
    code, _, err = cli("logs", "demo", "--request", "ffffffff")
    assert code == 1 and "no request 'ffffffff'" in err and record.request_id[:8] in err


def test_logs_of_an_agent_that_does_not_exist_is_an_error(world: World, cli) -> None:  # type: ignore[no-untyped-def]
    world.run(world.request())
    code, _, err = cli("logs", "demo", "--agent", "nope")
    assert code == 1 and "no agent 'nope'" in err and world.current_agent() in err


def test_status_fits_a_100_column_terminal_and_shows_request_ids_history_knows(world: World, cli) -> None:  # type: ignore[no-untyped-def]
    world.services.settings = replace(world.services.settings, bake_seconds=600, bake_runs=3)
    world.run(world.request())
    baking = world.run(world.request({".env": "GREETING=new\n"}), settled=True)
    assert baking.status is RunStatus.BAKING
    code, out, _ = cli("status")
    assert code == 0 and all(len(line) <= 100 for line in out.splitlines()), out
    assert baking.request_id[:8] in out
    code, history, _ = cli("history", "demo")
    row = next(line for line in history.splitlines() if baking.request_id[:8] in line)  # the table's
    assert "●" in row and "baking" in row  # baking, it is the current revision


def test_status_with_prefect_unreachable_says_why_workers_show_unknown_once(world: World, cli) -> None:  # type: ignore[no-untyped-def]
    from deployer.errors import UpstreamError

    world.run(world.request())
    world.orchestrator.fail_next["online_workers"] = UpstreamError(
        "read workers: cannot reach the Prefect API at http://127.0.0.1:9/api")
    code, out, err = cli("status")
    assert code == 0 and "unknown" in out
    assert err.count("cannot reach the Prefect API") == 1 and "WARNING" not in err + out


def test_rollback_dry_run_names_the_revision_and_plan_and_changes_nothing(world: World, cli) -> None:  # type: ignore[no-untyped-def]
    first = world.run(world.request())
    world.run(world.request({".env": "GREETING=new\n"}))
    assert first.revision is not None
    runs, agents = len(world.state.runs("demo")), world.runtime.running("demo")
    code, out, _ = cli("rollback", "demo", "--dry-run")
    assert code == 0 and first.revision.id in out and "dry run: nothing was changed" in out
    assert len(world.state.runs("demo")) == runs and world.runtime.running("demo") == agents
    code, out, _ = cli("rollback", "demo", "--dry-run", "--json")
    assert code == 0 and '"revision": "' + first.revision.id in out


def test_a_deploy_driven_here_returns_once_live_without_sleeping_through_bake_looks(world: World) -> None:
    from deployer.request_queue import new_record, submit
    from deployer.rotation.drive import drive

    world.services.settings = replace(world.services.settings, bake_seconds=600, bake_runs=3)
    world.run(world.request())
    record = submit(world.services, new_record(world.request({".env": "GREETING=new\n"})))
    done = drive(world.services, "demo", record.request_id)
    commit = done.stage("commit")
    assert done.status is RunStatus.BAKING and commit is not None and commit.finished_at is not None
    assert (world.clock.now - commit.finished_at).total_seconds() < 1.0  # not the bake's 2 + 3 + 4.5 s


def test_deploy_dry_run_shows_the_agents_size_and_each_deployments_run_limit(world: World, cli, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from tests.builders import module_files, write_module

    text = ("name: demo\ndeployer:\n  agent: {cpu: 2, memory: 4}\ndeployments:\n"
            "  - name: hello\n    entrypoint: flow.py:hello\n"
            "    work_pool:\n      job_variables: {memory: 3}\n")
    root = write_module(tmp_path, "demo", module_files("demo", {"prefect.yaml": text}))
    code, out, _ = cli("deploy", str(root), "--dry-run")
    assert code == 0, out
    assert "agent: 2 vCPU, 4 GB (prefect.yaml deployer.agent)" in out
    assert "runs of hello: at most 3 GB each" in out
    code, out, _ = cli("deploy", str(root), "--dry-run", "--json")
    assert code == 0 and '"memory_gb": 3.0' in out
