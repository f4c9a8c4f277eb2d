"""``deploy --dry-run``: the plan the pipeline would carry out, computed by the same planner
from the same inputs, with nothing uploaded, built, started or changed."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from deployer import codec
from deployer.bootstrap import Services
from deployer.bundle import load_folder
from deployer.models import RequestKind, Revision
from deployer.planning import plan_rotation


def dry_run(services: Services, path: Path) -> dict[str, Any]:
    module = load_folder(path, services.limits)
    revision = Revision(module.name, module.code_digest(),
                        module.config_digest(services.settings.config_digest_key.reveal()))
    state = services.state.module(module.name)
    same = state is not None and revision.same_as(state.value.current)
    plan = plan_rotation(
        kind=RequestKind.DEPLOY, revision=revision, state=state.value if state else None,
        image=services.builder.find(module.name, revision.code_digest),
        agents=services.runtime.list(module.name),
        online=services.orchestrator.online_workers(module.name) if same else set(),
        deployments=[d.name for d in module.deployments], prefix=services.settings.agent_prefix,
        now=services.now())
    return {"module": module.name, "revision": revision.id, "noop": plan.noop,
            "reason": plan.reason, "steps": [op.describe() for op in plan.operations],
            "operations": codec.to_data(list(plan.operations))}
