"""``deploy --dry-run``: the plan the pipeline would carry out, computed by the same planner
from inputs gathered by the same function, with nothing uploaded, built, started or changed."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from deployer.bundle import Module, load_folder
from deployer.bundle.sizing import Size, container_size, run_size
from deployer.errors import BundleInvalid
from deployer.models import Request, RequestKind, Revision, Trigger
from deployer.revisions import secret_pins
from deployer.revisions.source import RevisionSource
from deployer.rotation.inputs import gather
from deployer.rotation.plan import plan_rotation
from deployer.services import Services


def dry_run(services: Services, path: Path, *, repair: bool = False) -> dict[str, Any]:
    module = load_folder(path, services.limits, checker=services.checker).for_environment(
        services.settings.environment)
    module, pins = secret_pins.pin(module, services.secrets, source=str(path))
    revision = Revision.of(module, services.settings.config_digest_key.reveal(), secrets=pins)
    trigger = Trigger("cli", str(path), {"repair": "true"} if repair else {})
    request = Request("dry-run", RequestKind.DEPLOY, module.name, trigger, revision)
    conflicts = services.orchestrator.conflicts(module.name, module.deployments)
    if conflicts:
        raise BundleInvalid(conflicts, source=f"module {module.name}")
    return _planned(services, request, module)


def dry_run_request(services: Services, request: Request) -> dict[str, Any]:
    """The plan of a request already made (``rollback --dry-run``): its revision's own bundle,
    read from storage, through the same planner."""
    with RevisionSource(services, request) as source:
        return _planned(services, request, source.module)


def _planned(services: Services, request: Request, module: Module) -> dict[str, Any]:
    inputs = gather(services, request, module)
    plan = plan_rotation(inputs)
    revision = request.revision
    return {"module": module.name, "revision": revision.id, "noop": plan.noop,
            "reason": plan.reason, "path": plan.path, "changed": list(plan.changed),
            "why": inputs.parts_why, "steps": plan.steps(), "operations": list(plan.to_data()),
            "sizes": sizes(services, module)}


def sizes(services: Services, module: Module) -> dict[str, Any]:
    """What the module's agent is made with and each deployment's runs may use."""
    settings = services.settings
    default = Size(settings.agent_cpu, settings.agent_memory_gb)
    if module.options.per_run:  # no agent: each run's container is its deployment's size
        return {"agent": None, "isolation": "run", "runs": {
            spec.name: {"cpu": size.cpu, "memory_gb": size.memory_gb, "container": True}
            for spec in module.deployments for size in [container_size(spec, default)]}}
    agent = module.agent_size(default)
    runs = {}
    for spec in module.deployments:
        cpu, memory = run_size(spec)
        runs[spec.name] = {"cpu": cpu, "memory_gb": memory}
    return {"agent": {"cpu": agent.cpu, "memory_gb": agent.memory_gb,
                      "declared": module.options.agent is not None},
            "isolation": "agent", "runs": runs}
