"""What the planner looks at, gathered from state, registry, runtime and Prefect. The real run
and ``deploy --dry-run`` both call ``gather``, so a dry run shows exactly what would happen."""

from __future__ import annotations

from deployer.bundle import Module
from deployer.bundle.deployment_config import smoke_of
from deployer.errors import NotFound
from deployer.models import ModuleState, Request, RequestKind
from deployer.ports.images import Image
from deployer.rotation.plan import Inputs, image_key
from deployer.services import Services


def gather(services: Services, request: Request, source: Module) -> Inputs:
    """What the planner looks at, for ``request`` and the module its bundle holds."""
    deployments = source.deployments
    requirements = (source.root / "requirements.txt").read_bytes()
    parts_why = source.dependencies().why
    module, revision = request.module, request.revision
    got = services.state.module(module)
    state = got.value if got else None
    agents = services.runtime.list(module)
    current = state.current if state else None
    if request.kind is RequestKind.REDEPLOY:  # its runs use that code, never the code store
        note: str | None = "a pushed image runs the code it carries"
    elif not services.settings.fast_deploys:
        note = "fast deploys are off (DEPLOYER_FAST_DEPLOYS=off): the image carries the code"
    else:
        note = services.code.requirement(requirements)
    code_store = note is None
    # whether workers are ONLINE decides something only when the serving agent may stay: the
    # revision is current already, or only its code changed
    keeps_agent = current is not None and current.config_digest == revision.config_digest and (
        revision.same_as(current) or (code_store and revision.deps_digest == current.deps_digest))
    online = services.orchestrator.online_workers(module) if keeps_agent else set()
    damage: tuple[str, ...] = ()
    if code_store and current is not None and revision.same_as(current):
        damage = tuple(services.code.verify(module, revision.code_digest))
        if not damage and not current.code_store:
            damage = ("published before runs verified their code: its pull steps do not",)
        if not damage and request.trigger.detail.get("repair") == "true":
            damage = ("deploy --repair: published again, re-registered",)
    image = (services.builder.find(module, image_key(revision, code_store))
             if request.kind is RequestKind.DEPLOY else known_image(services, request))
    return Inputs(kind=request.kind, revision=revision, state=state, image=image, agents=agents,
                  online=online, deployments=[d.name for d in deployments],
                  prefix=services.settings.agent_prefix, now=services.now(),
                  drained_elsewhere=drained_elsewhere(services, state, request.request_id),
                  smoke=[(d.name, d.flow_name) for d in deployments if smoke_of(d) is not None],
                  bake=services.settings.bake_seconds > 0, code_store=code_store,
                  parts_why="; ".join(w for w in (parts_why, note or "") if w), code_damage=damage)


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
    out: set[str] = set()
    if state is None:
        return out
    for draining in state.draining:
        if draining.request_id == request_id:
            continue
        got = services.state.run(state.module, draining.request_id)
        if got is not None and not got.value.status.finished:
            out.add(draining.name)
    return out
