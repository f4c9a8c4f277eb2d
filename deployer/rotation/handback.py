"""Handing a module's deployments back to the agent that served before.

Used when a rung of the health ladder fails after the deployments were re-pointed (the revert)
and when a baking revision's runs fail (the automatic rollback): the previous revision's
deployments are registered on the previous agent's queue again, that queue resumes, and the
new agent's queue is paused with its waiting runs re-homed to the previous one. Runs already in
flight on the new agent are left to finish there.
"""

from __future__ import annotations

from typing import Any

from deployer.bundle.prefect_yaml import DeploymentSpec
from deployer.errors import NotFound
from deployer.models import Request, RequestKind, Revision, Trigger
from deployer.revisions.source import RevisionSource
from deployer.services import Services


def hand_back(services: Services, module: str, *, previous: Revision | None, previous_queue: str,
              new_queue: str) -> dict[str, Any]:
    orchestrator = services.orchestrator
    if previous is None or not previous_queue:
        # a first deploy: there is nothing to hand back to, so the deployments it registered go
        removed = orchestrator.register(module, new_queue, [], [], "")
        orchestrator.pause_queue(module, new_queue)
        return {"removed": removed}
    specs, pull_steps = previous_deployments(services, previous)
    orchestrator.register(module, previous_queue, specs, pull_steps, previous.id,
                          previous.image if previous.per_run else "")
    if previous_queue == new_queue:  # a code-only revision: same agent, only its code goes back
        return {"deployments": [d.name for d in specs], "to": previous_queue, "rehomed": []}
    orchestrator.resume_queue(module, previous_queue)
    orchestrator.pause_queue(module, new_queue)
    moved = orchestrator.rehome_scheduled(module, new_queue, previous_queue)
    return {"deployments": [d.name for d in specs], "to": previous_queue,
            "rehomed": [list(pair) for pair in moved]}


def previous_deployments(services: Services,
                         revision: Revision) -> tuple[list[DeploymentSpec], list[dict[str, Any]]]:
    """The revision's deployments (from its own bundle) and how its runs got their code: from
    the code store when its code is there, else from its image's working directory."""
    request = Request(f"handback-{revision.id}", RequestKind.ROLLBACK, revision.module,
                      Trigger("handback", revision.id), revision, services.now())
    with RevisionSource(services, request) as source:
        specs = list(source.module.deployments)
        if services.code.exists(revision.module, revision.code_digest):
            # its runs verify the copy they pull: one that was altered or partly deleted since
            # is published again from the revision's own bundle (a whole one is kept)
            services.code.publish(revision.module, revision.code_digest, source.module.root)
            return specs, services.code.pull_steps(revision.module, revision.code_digest,
                                                   revision.id)
    image = services.builder.resolve(revision.module, revision.image)
    if image is None:
        raise NotFound(f"image {revision.image} of revision {revision.id} is gone from the registry")
    return specs, image.pull_steps()
