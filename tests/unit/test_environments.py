"""Environments: one installation serves dev and prod, each with its own state, agents and
Prefect, the same images and code; ``.env.<env>`` over ``.env``; every entry point names its
environment; an installation without environments is as before."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from deployer.config import Settings
from deployer.errors import ConfigError
from tests.builders import module_files, write_module
from tests.unit.pipeline_world import KEY, World, make_world

ENVIRONMENTS = {"DEPLOYER_ENVIRONMENTS": "dev,prod", "DEPLOYER_ENV__prod__PREFECT_API_URL": "http://prod/api",
                "DEPLOYER_ENV__prod__PREFECT_API_KEY": "pnu_prod_key"}


@pytest.fixture
def world() -> World:
    return make_world(ENVIRONMENTS)


def module(tmp_path: Path, **changes: str) -> Path:
    files = {".env": "GREETING=hi\nAPI_TOKEN=dev-token\n", ".env.prod": "API_TOKEN=prod-token\n", **changes}
    return write_module(tmp_path, "demo", module_files("demo", files))  # type: ignore[arg-type]


def test_every_problem_with_the_environments_settings_is_named_at_once() -> None:
    base = {"AzureWebJobsStorage": "UseDevelopmentStorage=true", "PREFECT_API_URL": "http://x/api",
            "DEPLOYER_CONFIG_DIGEST_KEY": KEY, "DEPLOYER_ENVIRONMENTS": "dev,prod,qa",
            "DEPLOYER_ENV__prod__PREFECT_API_URL": "http://prod/api",
            "DEPLOYER_ENV__qa__PREFECT_API_URL": "http://qa/api"}
    with pytest.raises(ConfigError) as info:
        Settings.from_env({**base, "DEPLOYER_ENV__stage__APPROVAL": "required",
                           "DEPLOYER_ENV__prod__DEPLOYER_BACKEND": "azure",
                           "DEPLOYER_ENV__dev__AUTO_PROMOTE_FROM": "prod"})
    text = str(info.value)
    assert "DEPLOYER_ENV__stage__APPROVAL: 'stage' is not an environment of DEPLOYER_ENVIRONMENTS (dev, prod, qa)" in text
    assert "DEPLOYER_BACKEND is not a setting that may differ per environment" in text
    assert "DEPLOYER_ENV__dev__AUTO_PROMOTE_FROM: 'prod' must be an environment before 'dev'" in text
    with pytest.raises(ConfigError, match="must be one of none, required, required-other"):
        Settings.from_env({**base, "DEPLOYER_ENV__prod__APPROVAL": "maybe"}, environment="prod")
    with pytest.raises(ConfigError, match="DEPLOYER_ENVIRONMENTS names environments that are not"):
        Settings.from_env({**base, "DEPLOYER_ENVIRONMENTS": "Dev,prod"})
    with pytest.raises(ConfigError, match="'example', which cannot be an environment"):
        Settings.from_env({**base, "DEPLOYER_ENVIRONMENTS": "example,prod"})
    # a bad value of another environment is said whichever environment is read
    with pytest.raises(ConfigError, match="environment prod: DEPLOYER_APPROVAL must be one of"):
        Settings.from_env({**base, "DEPLOYER_ENV__prod__APPROVAL": "requried"}, environment="dev")
    # two environments on one Prefect: each module's pool would be both environments'
    with pytest.raises(ConfigError, match="environments dev and qa share the Prefect API"):
        Settings.from_env({**base, "DEPLOYER_ENV__qa__PREFECT_API_URL": "http://x/api"})
    one = Settings.from_env({k: v for k, v in base.items() if not k.startswith("DEPLOYER_ENV")})
    assert (one.environment, one.environment_name, one.state_container) == ("", "default", "deployer-state")
    prod = Settings.from_env(base, environment="prod")
    assert (prod.environment, prod.state_container) == ("prod", "deployer-state-prod")
    assert prod.agent_prefix == "agent-prod" and Settings.from_env(base).agent_prefix == "agent"
    assert not prod.legacy_agents and prod.agents_home.name == "prod"
    kept = Settings.from_env({**base, "DEPLOYER_ENV__prod__DEPLOYER_STATE_CONTAINER": "deployer-state"},
                             environment="prod")
    assert kept.state_container == "deployer-state"  # an existing installation's state, as prod's
    assert kept.legacy_agents and kept.agents_home == kept.home_path  # and its agents


def test_each_environment_deploys_with_its_own_state_agents_prefect_and_env_values(
        world: World, cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    root = module(tmp_path)
    code, out, err = cli("deploy", str(root))  # the first environment: dev
    assert code == 0, err
    code, out, err = cli("--env", "prod", "deploy", str(root))
    assert code == 0, err
    dev, prod = world.services, world.services.in_environment("prod")
    dev_doc, prod_doc = dev.state.module("demo").value, prod.state.module("demo").value  # type: ignore[union-attr]
    assert dev_doc.current.code_digest == prod_doc.current.code_digest  # type: ignore[union-attr]
    assert dev_doc.current.config_digest != prod_doc.current.config_digest  # type: ignore[union-attr]
    [dev_agent] = dev.runtime.agents.values()  # type: ignore[attr-defined]
    [prod_agent] = prod.runtime.agents.values()  # type: ignore[attr-defined]
    assert dev_agent.spec.env["API_TOKEN"] == "dev-token" and dev_agent.spec.env["GREETING"] == "hi"
    assert prod_agent.spec.env["API_TOKEN"] == "prod-token" and prod_agent.spec.env["GREETING"] == "hi"
    assert prod_agent.spec.env["PREFECT_API_KEY"] == "pnu_prod_key"
    assert prod.settings.prefect_api_url == "http://prod/api"
    assert ("demo", "hello") in prod.orchestrator.deployments  # type: ignore[attr-defined]
    assert len(world.builder.builds) == 1  # one image for both
    code, out, _ = cli("--env", "prod", "status", "--json")
    current = json.loads(out)["modules"][0]["state"]["current"]
    assert code == 0 and current["config_digest"] == prod_doc.current.config_digest  # type: ignore[union-attr]
    code, out, _ = cli("--env", "prod", "history", "demo", "--json")
    assert code == 0 and len(json.loads(out)["entries"]) == 1


def test_an_unknown_environment_is_a_usage_error_that_lists_the_known_ones(cli) -> None:  # type: ignore[no-untyped-def]
    code, _, err = cli("--env", "stage", "status")
    assert code == 2 and "there is no environment 'stage': the environments are dev, prod" in err


def test_env_files_of_environments_are_secrets_never_code(tmp_path: Path) -> None:
    from deployer.bundle import BundleLimits, load_folder

    plain = load_folder(write_module(tmp_path / "a", "demo", module_files("demo")), BundleLimits())
    overlaid = load_folder(module(tmp_path / "b", **{".env": module_files("demo")[".env"].decode()}),
                           BundleLimits())
    assert plain.code_digest() == overlaid.code_digest()  # .env.prod is not code
    assert overlaid.for_environment("prod").env.as_dict()["API_TOKEN"] == "prod-token"
    assert overlaid.for_environment("dev").env == overlaid.env
    # .env.example documents the module: an ordinary file (code), never an overlay, never parsed
    documented = load_folder(module(tmp_path / "c", **{".env": module_files("demo")[".env"].decode(),
                                                       ".env.example": "export API_TOKEN=<yours>\n"}),
                             BundleLimits())
    assert documented.code_digest() != overlaid.code_digest()
    assert dict(documented.env_overlays).keys() == {"prod"}


APPROVED_PROD = {**ENVIRONMENTS, "DEPLOYER_ENV__prod__APPROVAL": "required"}


def test_a_promotion_waits_for_its_approval_then_serves_devs_image_and_code_with_prods_config(
        tmp_path: Path) -> None:
    from deployer.models import RequestKind, RunStatus

    world = make_world(APPROVED_PROD)
    run = in_process(world)
    assert run("deploy", str(module(tmp_path)))[0] == 0
    dev, prod = world.services, world.services.in_environment("prod")
    code, out, err = run("promote", "demo", "--to", "prod")
    assert code == 0 and "awaits an approval in prod (required)" in err, (out, err)
    [waiting] = prod.state.runs("demo")
    assert waiting.status is RunStatus.AWAITING_APPROVAL and waiting.kind is RequestKind.PROMOTE
    assert prod.runtime.agents == {} and prod.state.module("demo") is None  # type: ignore[attr-defined]
    code, out, err = run("--env", "prod", "approve", waiting.request_id[:8], "--comment", "dev looked fine")
    assert code == 0, (out, err)
    served, source = prod.state.module("demo").value.current, dev.state.module("demo").value.current  # type: ignore[union-attr]
    assert (served.image, served.image_digest, served.code_digest) == (  # type: ignore[union-attr]
        source.image, source.image_digest, source.code_digest)  # type: ignore[union-attr]
    assert served.config_digest != source.config_digest  # type: ignore[union-attr]
    assert len(world.builder.builds) == 1  # no build in prod's request
    [agent] = prod.runtime.agents.values()  # type: ignore[attr-defined]
    assert agent.spec.env["API_TOKEN"] == "prod-token"
    [entry] = prod.state.history("demo")
    assert entry.kind is RequestKind.PROMOTE and entry.outcome is RunStatus.SUCCEEDED
    assert entry.trigger.detail["from_environment"] == "dev"
    record = prod.state.run("demo", waiting.request_id).value  # type: ignore[union-attr]
    assert record.approval.decision == "approved" and record.approval.comment == "dev looked fine"  # type: ignore[union-attr]
    code, _, err = run("--env", "prod", "approve", waiting.request_id[:8])
    assert code == 2 and "is succeeded: there is nothing to approve" in err


def promoted_awaiting(tmp_path: Path):  # type: ignore[no-untyped-def]
    """Prod requires approval; demo deployed into dev and asked to be promoted: (world, the CLI,
    prod's services, the request awaiting approval)."""
    world = make_world(APPROVED_PROD)
    run = in_process(world)
    prod = world.services.in_environment("prod")
    assert run("deploy", str(module(tmp_path / "a")))[0] == 0
    run("promote", "demo", "--to", "prod")
    [waiting] = prod.state.runs("demo")
    return world, run, prod, waiting


def test_a_rejected_promotion_changes_nothing_in_prod(tmp_path: Path) -> None:
    from deployer.models import RunStatus

    _, run, prod, first = promoted_awaiting(tmp_path)
    assert run("--env", "prod", "approve", first.request_id)[0] == 0
    before = prod.state.module("demo").value.current  # type: ignore[union-attr]
    assert run("deploy", str(module(tmp_path / "b", **{".env": "GREETING=new\nAPI_TOKEN=x\n"})))[0] == 0
    run("promote", "demo", "--to", "prod")
    [second] = [r for r in prod.state.runs("demo") if r.status is RunStatus.AWAITING_APPROVAL]
    code, _, err = run("--env", "prod", "reject", second.request_id[:8])
    assert code == 2 and "--reason" in err  # a rejection says why
    code, out, _ = run("--env", "prod", "reject", second.request_id[:8], "--reason", "quarter close")
    assert code == 0 and "nothing changed in prod" in out
    assert prod.state.module("demo").value.current == before  # type: ignore[union-attr]
    assert prod.state.history("demo")[-1].outcome is RunStatus.REJECTED
    assert "quarter close" in prod.state.history("demo")[-1].error["message"]  # type: ignore[index]


def test_promotion_refuses_what_has_not_succeeded_and_names_the_environments(tmp_path: Path) -> None:
    world = make_world({**ENVIRONMENTS, "DEPLOYER_ENV__prod__APPROVAL": "required-other"})
    run = in_process(world)
    code, _, err = run("promote", "demo", "--to", "prod")
    assert code != 0 and "nothing of demo serves in dev to promote" in err
    code, _, err = run("promote", "demo", "--to", "dev")
    assert code == 2 and "dev is the first environment" in err
    code, _, err = run("promote", "demo", "--to", "qa")
    assert code == 2 and "there is no environment 'qa': the environments are dev, prod" in err
    assert run("deploy", str(module(tmp_path)))[0] == 0
    dev = world.services
    got = dev.state.module("demo")
    from dataclasses import replace

    from deployer.models import Baking
    doc = got.value  # type: ignore[union-attr]
    dev.state.save_module(replace(doc, baking=Baking(doc.request_id, doc.current.id, world.clock(),  # type: ignore[union-attr]
                                                     world.clock(), 3, "")), got.etag)  # type: ignore[union-attr]
    code, _, err = run("promote", "demo", "--to", "prod")
    assert code == 2 and "has not succeeded in dev: it is still in its bake window" in err
    code, _, err = run("promote", "demo", "--to", "prod", "--force")
    assert code == 0 and "awaits an approval" in err
    prod = world.services.in_environment("prod")
    [waiting] = prod.state.runs("demo")
    assert waiting.trigger.detail["forced"].startswith("it is still in its bake window")
    # required-other: the one who asked cannot approve
    code, _, err = run("--env", "prod", "approve", waiting.request_id[:8])
    assert code == 2 and "by someone other than the requester" in err


def in_process(world: World):  # type: ignore[no-untyped-def]
    """``deployer ARGV`` in-process on the world's services: (exit code, stdout, stderr)."""
    import contextlib
    import io

    from deployer.cli import main, output

    def run(*argv: str) -> tuple[int, str, str]:
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            output.out.file, output.err.file = out, err
            try:
                code = main(list(argv), services=lambda args: world.services)
            finally:
                output.out.file, output.err.file = None, None  # type: ignore[assignment]
        return code, out.getvalue(), err.getvalue()
    return run


def test_the_cleanup_keeps_what_another_environment_serves(tmp_path: Path) -> None:
    """Images, code and bundles are shared: dev's cleanup would delete the bundle of a revision
    dev no longer keeps, but prod serves it, so it stays (the reason names prod)."""
    from deployer.pipeline.cleanup import run_cleanup

    world = make_world({**ENVIRONMENTS, "DEPLOYER_KEEP_REVISIONS": "1",
                        "DEPLOYER_ROLLBACK_WINDOW_DAYS": "0", "DEPLOYER_RETENTION_DAYS": "1",
                        "DEPLOYER_KEEP_RECORDS": "1"})
    run = in_process(world)
    assert run("deploy", str(module(tmp_path / "a")))[0] == 0
    assert run("promote", "demo", "--to", "prod")[0] == 0
    prod = world.services.in_environment("prod")
    served = prod.state.module("demo").value.current  # type: ignore[union-attr]
    for n in (1, 2):
        world.clock.sleep(60)  # bundles are named by the time of their upload
        assert run("deploy", str(module(tmp_path / f"b{n}", **{".env": f"GREETING={n}\n"})))[0] == 0
    # the fake store stamps bundles with the wall clock: look from well past the retention
    world.clock.sleep((datetime.now(UTC) - world.clock()).total_seconds() + 3 * 86400)
    items = run_cleanup(world.services, dry_run=True).items
    [bundle] = [i for i in items if i.kind == "bundle" and i.target == served.bundle]  # type: ignore[union-attr]
    assert bundle.outcome == "kept" and bundle.reason.startswith("environment prod:"), bundle
    assert any(i.kind == "bundle" and i.outcome == "planned" for i in items)  # dev's own old ones go
    code, out, _ = run("cleanup", "--dry-run", "--json")
    assert code == 0 and set(json.loads(out)) == {"dev", "prod"}  # every environment's plan


def test_an_upload_names_its_environment_in_its_metadata_and_an_unknown_one_is_refused(
        world: World) -> None:
    from deployer.models import RunStatus
    from deployer.pipeline.intake import accept_bundle
    from tests.builders import module_tar

    world.bundles.put("demo/1.tar.gz", module_tar("demo"), {"environment": "prod"})
    record = accept_bundle(world.services, "demo/1.tar.gz")
    prod = world.services.in_environment("prod")
    assert prod.state.run("demo", record.request_id) is not None  # prod's request
    assert world.services.state.run("demo", record.request_id) is None
    world.bundles.put("demo/2.tar.gz", module_tar("demo"), {"environment": "stage"})
    refused = accept_bundle(world.services, "demo/2.tar.gz")
    assert refused.status is RunStatus.REJECTED
    assert "names environment 'stage' (blob metadata environment), which is not one of dev, prod" in \
        json.dumps(refused.error)
    world.bundles.put("demo/3.tar.gz", module_tar("demo"))  # none: the first environment's
    assert world.services.state.run("demo", accept_bundle(world.services, "demo/3.tar.gz").request_id)


def test_status_without_an_environment_is_a_module_by_environment_matrix(tmp_path: Path) -> None:
    world = make_world(APPROVED_PROD)
    run = in_process(world)
    assert run("deploy", str(module(tmp_path / "a")))[0] == 0
    run("promote", "demo", "--to", "prod")

    def cells() -> dict:  # type: ignore[type-arg]
        code, out, err = run("status", "--json")
        assert code == 0, err
        data = json.loads(out)
        assert data["environments"] == ["dev", "prod"]
        return data["modules"][0]["cells"]

    prod = cells()["prod"]
    assert prod["revision"] == "" and prod["behind"] == 1 and prod["behind_of"] == "dev"
    [waiting] = prod["awaiting_approval"]
    assert run("--env", "prod", "approve", waiting[:8])[0] == 0
    now = cells()
    assert now["prod"]["behind"] == 0 and now["prod"]["code_digest"] == now["dev"]["code_digest"]
    assert now["prod"]["image_digest"] == now["dev"]["image_digest"] and now["dev"]["behind"] is None
    flow = module_files("demo")["flow.py"].decode() + "\n# the next revision\n"
    world.clock.sleep(60)  # a later upload (uploads of one instant are ordered by name)
    assert run("deploy", str(module(tmp_path / "b", **{"flow.py": flow})))[0] == 0
    assert cells()["prod"]["behind"] == 1
    code, out, _ = run("status")
    assert code == 0 and "1 behind dev" in out and "prod" in out


def test_make_dev_starts_a_prefect_server_for_each_environment_that_names_its_own(tmp_path: Path) -> None:
    from deployer.devstack import prefect_servers

    found = prefect_servers({"PREFECT_API_URL": "http://127.0.0.1:4200/api", "DEPLOYER_ENVIRONMENTS": "dev,prod",
                             "DEPLOYER_ENV__prod__PREFECT_API_URL": "http://127.0.0.1:4300/api",
                             "DEPLOYER_ENV__prod__APPROVAL": "required"}, tmp_path)
    assert [(label, api) for label, api, _ in found] == [
        ("Prefect", "http://127.0.0.1:4200/api"), ("Prefect of prod", "http://127.0.0.1:4300/api")]
    assert found[1][2] == tmp_path / "services" / "prefect-prod"  # its own data


def test_a_revision_proven_in_dev_is_promoted_to_prod_on_its_own_when_prod_says_so(tmp_path: Path) -> None:
    from deployer.models import RequestKind, RunStatus

    world = make_world({**ENVIRONMENTS, "DEPLOYER_ENV__prod__AUTO_PROMOTE_FROM": "dev"})
    run = in_process(world)
    code, _, err = run("deploy", str(module(tmp_path)))
    assert code == 0 and "promoted to prod on its own" in err, err
    world.pump()  # the function app takes prod's request from the queue
    prod = world.services.in_environment("prod")
    [record] = prod.state.runs("demo")
    assert record.kind is RequestKind.PROMOTE and record.trigger.source == "auto-promote"
    assert record.status is RunStatus.SUCCEEDED, record.error
    assert prod.state.module("demo").value.current.code_digest == \
        world.services.state.module("demo").value.current.code_digest  # type: ignore[union-attr]


def test_the_requester_is_the_uploader_whichever_makes_the_request_first(world: World) -> None:
    """The blob trigger may make the request before the CLI: the uploader, in the blob's metadata,
    is its requester all the same (required-other refuses their own approval)."""
    from deployer.pipeline.intake import accept_bundle
    from tests.builders import module_tar

    world.bundles.put("demo/1.tar.gz", module_tar("demo"), {"environment": "prod", "user": "alice"})
    record = accept_bundle(world.services, "demo/1.tar.gz")  # the trigger's, no detail of its own
    assert record.trigger.detail["user"] == "alice"


def test_the_dashboard_shows_the_matrix_too(tmp_path: Path) -> None:
    from deployer.dashboard import dashboard_data, render

    world = make_world(APPROVED_PROD)
    run = in_process(world)
    assert run("deploy", str(module(tmp_path)))[0] == 0
    run("promote", "demo", "--to", "prod")
    data = dashboard_data(world.services)
    assert data["environments"]["names"] == ["dev", "prod"]
    page = render(data)
    assert "<h2>Environments</h2>" in page and "1 behind dev" in page and "awaiting approval: " in page


def test_a_newer_request_supersedes_one_still_awaiting_approval_at_once(tmp_path: Path) -> None:
    from deployer.models import RunStatus

    world, run, prod, older = promoted_awaiting(tmp_path)
    world.clock.sleep(60)
    run("promote", "demo", "--to", "prod", "--force")  # asked again, later
    older = prod.state.run("demo", older.request_id).value  # type: ignore[union-attr]
    assert older.status is RunStatus.SUPERSEDED and older.superseded_by
    code, _, err = run("--env", "prod", "approve", older.request_id[:8])
    assert code == 2 and "is superseded: there is nothing to approve" in err
    [waiting] = [r for r in prod.state.runs("demo") if r.status is RunStatus.AWAITING_APPROVAL]
    assert waiting.request_id == older.superseded_by
