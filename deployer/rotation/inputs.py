"""What the planner looks at, gathered from state, registry, runtime and Prefect. The real run
and ``deploy --dry-run`` both call ``gather``, so a dry run shows exactly what would happen."""

from __future__ import annotations

from collections.abc import Sequence

from deployer.bundle.deployment_config import smoke_of
from deployer.bundle.prefect_yaml import DeploymentSpec
from deployer.errors import NotFound
from deployer.models import ModuleState, Request, RequestKind
from deployer.ports import Image, Services
from deployer.rotation.plan import Inputs


def gather(services: Services, request: Request, deployments: Sequence[DeploymentSpec]) -> Inputs:
    module, revision = request.module, request.revision
    got = services.state.module(module)
    state = got.value if got else None
    agents = services.runtime.list(module)
    same = state is not None and revision.same_as(state.current)
    # whether workers are ONLINE only decides anything when this revision is already current
    online = services.orchestrator.online_workers(module) if same else set()
    image = (services.builder.find(module, revision.code_digest)
             if request.kind is RequestKind.DEPLOY else known_image(services, request))
    return Inputs(kind=request.kind, revision=revision, state=state, image=image, agents=agents,
                  online=online, deployments=[d.name for d in deployments],
                  prefix=services.settings.agent_prefix, now=services.now(),
                  drained_elsewhere=drained_elsewhere(services, state, request.request_id),
                  smoke=[(d.name, d.flow_name) for d in deployments if smoke_of(d) is not None],
                  bake=services.settings.bake_seconds > 0)


def known_image(services: Services, request: Request) -> Image:
    """A redeploy's or rollback's image: it must still be in the registry."""
    revision = request.revision
    image = services.builder.resolve(request.module, revision.image)
    if image is None:
        raise NotFound(f"image {revision.image} of module {request.module} is no longer in the "
                       "registry", hint="deploy that revision's bundle again to rebuild it, or "
                       "choose another revision (`deployer history`)")
    return image


def drained_elsewhere(services: Services, state: ModuleState | None, request_id: str) -> set[str]:
    """Agents in the module's draining list whose drain another live request looks after."""
    out = set()
    for draining in state.draining if state else ():
        if draining.request_id == request_id:
            continue
        got = services.state.run(state.module, draining.request_id)  # type: ignore[union-attr]
        if got is not None and not got.value.status.finished:
            out.add(draining.name)
    return out
