"""The code store is trusted only as far as it verifies: a copy someone altered, partly deleted
or added to is reported by status and cleanup, refused by every run (the pull steps verify; see
the code store contract), and published again by a re-upload of the same content, by
``deploy --repair`` and by a rollback to that revision."""

from __future__ import annotations

from deployer.dashboard import dashboard_data, render
from deployer.models import RunStatus
from deployer.pipeline.cleanup import run_cleanup
from deployer.pipeline.rollback import rollback_request
from deployer.pipeline.status import module_statuses
from deployer.rotation.dryrun import dry_run
from tests.builders import module_files, write_module
from tests.unit.pipeline_world import World

CODE = {"flow.py": "from prefect import flow\n\n@flow(name='demo')\ndef hello():\n    return 2\n"}


def deployed(world: World) -> tuple[str, str]:
    """A module deployed with fast deploys on: its code in the store. (code digest, revision)"""
    world.code.capable = True
    record = world.run(world.request())
    assert record.status is RunStatus.SUCCEEDED and record.revision is not None
    return record.revision.code_digest, record.revision.id


def test_the_serving_revision_is_recorded_as_pulling_its_code_from_the_store(world: World) -> None:
    code, _ = deployed(world)
    current = world.state.module("demo").value.current  # type: ignore[union-attr]
    assert current.code_store and current.code_digest == code  # type: ignore[union-attr]
    [status] = module_statuses(world.services, "demo")
    assert (status.code, status.code_problems) == ("verified", ())


def test_an_altered_copy_shows_in_status_and_cleanup_and_a_re_upload_publishes_it_again(world: World) -> None:
    code, revision = deployed(world)
    world.code.tamper("demo", code, "flow.py", b"import os\nos.system('exfiltrate')\n")
    [status] = module_statuses(world.services, "demo")
    assert status.code == "damaged" and status.code_problems[0].startswith("flow.py: altered")
    page = render(dashboard_data(world.services))
    assert "code damaged" in page and "flow.py: altered" in page and "deployer deploy --repair flows/demo" in page
    [anomaly] = [i for i in run_cleanup(world.services, dry_run=True).items if i.outcome == "anomaly"]
    assert revision in anomaly.reason and "flow.py: altered" in anomaly.reason and "--repair" in anomaly.reason

    record = world.run(world.request())  # the same content again: a repair, not a no-op
    assert record.status is RunStatus.SUCCEEDED and record.stage("plan").detail["path"] == "repair"  # type: ignore[union-attr]
    assert [op["op"] for op in record.plan] == ["publish-code", "register", "commit"]
    assert record.stage("publish-code").detail["repaired"][0].startswith("flow.py: altered")  # type: ignore[union-attr]
    assert world.code.verify("demo", code) == []
    assert module_statuses(world.services, "demo")[0].code == "verified"
    entry = world.state.history("demo")[-1]
    assert (entry.outcome, entry.path, entry.request_id) == (RunStatus.SUCCEEDED, "repair", record.request_id)
    assert not [i for i in run_cleanup(world.services, dry_run=True).items if i.outcome == "anomaly"]


def test_code_deleted_from_the_store_is_reported_then_published_again(world: World) -> None:
    code, _ = deployed(world)
    world.code.delete("demo", code)
    [status] = module_statuses(world.services, "demo")
    assert status.code == "damaged" and status.code_problems == ("the code is missing from the code store",)
    record = world.run(world.request())
    assert record.stage("plan").detail["path"] == "repair" and world.code.verify("demo", code) == []  # type: ignore[union-attr]
    assert record.stage("publish-code").detail["repaired"] == []  # type: ignore[union-attr]  # it was gone, not altered


def test_an_intact_copy_makes_a_re_upload_a_no_op_and_repair_explicit(world: World, tmp_path) -> None:  # type: ignore[no-untyped-def]
    deployed(world)
    assert world.run(world.request()).status is RunStatus.NOOP
    folder = write_module(tmp_path, "demo", module_files("demo"))
    assert dry_run(world.services, folder)["noop"] is True
    plan = dry_run(world.services, folder, repair=True)
    assert plan["path"] == "repair" and [op["op"] for op in plan["operations"]] == ["publish-code", "register", "commit"]


def test_a_rollback_to_a_revision_whose_copy_was_altered_publishes_it_again(world: World) -> None:
    code, revision = deployed(world)
    world.run(world.request(CODE))
    world.code.tamper("demo", code, "flow.py", b"print('tampered')\n")
    request = rollback_request(world.services, "demo")
    assert request.revision.id == revision
    record = world.run(request)
    assert record.status is RunStatus.SUCCEEDED and world.code.verify("demo", code) == []
    assert record.stage("publish-code").detail["repaired"][0].startswith("flow.py: altered")  # type: ignore[union-attr]
