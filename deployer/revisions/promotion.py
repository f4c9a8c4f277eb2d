"""Promotion: the revision that serves in one environment, deployed into the next unchanged.

``promotion_request`` takes the revision serving in the source environment (by default the one
before the target in ``DEPLOYER_ENVIRONMENTS``) and makes a ``promote`` request of it in the
target: the same bundle, so the same code digest; the same image, pinned by its digest (no
build; refused if the registry's tag moved on); the target's configuration (``.env`` with its
``.env.<target>``, its Key Vault versions pinned now), so its own config digest. A source revision
that has not succeeded there (its request failed, or it is still in its bake window) is refused
with why, unless ``force`` (recorded in the request). The target's history says where the
revision came from: environment, request, revision, when.
"""

from __future__ import annotations

from dataclasses import replace

from deployer.bundle import load_archive, module_from_blob_name
from deployer.bundle.archive import ChunkReader
from deployer.errors import NotFound, UsageError
from deployer.models import Intent, Request, RequestKind, Revision, RunStatus, Trigger
from deployer.revisions import secret_pins
from deployer.services import Services
from deployer.workdir import work_folder


def source_of(services: Services, target: str, source: str | None) -> str:
    """The environment a promotion into ``target`` takes from: ``source``, else the one before."""
    known = services.settings.environments
    if not known:
        raise UsageError("promotion needs environments: this installation has one "
                         "(set DEPLOYER_ENVIRONMENTS=dev,prod)")
    for name in (target, source):
        if name is not None and name not in known:
            raise UsageError(f"there is no environment {name!r}: the environments are "
                             f"{', '.join(known)}")
    if source is None:
        at = known.index(target)
        if at == 0:
            raise UsageError(f"{target} is the first environment: nothing comes before it to "
                             "promote from", hint="deploy into it, or name --from")
        return known[at - 1]
    if source == target:
        raise UsageError(f"--from and --to are both {target}")
    return source


def promotion_request(src: Services, dst: Services, module: str, *, force: bool = False,
                      user: str = "", trigger_source: str = "cli", key: str = "") -> Request:
    """``key``: what makes the request's id (an automatic promotion's source request: the same
    promotion asked twice is one request); by default, when it is asked."""
    got = src.state.module(module)
    where = src.settings.environment_name
    if got is None or got.value.current is None:
        raise NotFound(f"nothing of {module} serves in {where} to promote",
                       hint=f"`deployer --env {where} status` lists what serves there")
    doc, revision = got.value, got.value.current
    if not revision.bundle or revision.code_digest.startswith("oci:"):
        raise UsageError(f"revision {revision.id} of {module} in {where} came from a registry push: "
                         "its code is in its image, with no bundle to give another environment its "
                         "configuration", hint="deploy the module's folder into the source "
                         "(`deployer deploy`), then promote that")
    why = _not_proven(src, module, revision, doc.request_id)
    if why and not force:
        raise UsageError(f"revision {revision.id} of {module} has not succeeded in {where}: {why}",
                         hint="wait for it, or pass --force to promote it anyway (recorded)")
    image = src.builder.resolve(module, revision.image) if revision.image else None
    if image is None:
        raise NotFound(f"the image of revision {revision.id} ({revision.image or 'none recorded'}) "
                       "is gone from the registry: nothing to promote without a build")
    if revision.image_digest and image.digest and image.digest != revision.image_digest:
        raise UsageError(f"the image tag of revision {revision.id} now names another image "
                         f"({image.digest[:19]}, not {revision.image_digest[:19]}): it was "
                         "rebuilt since; deploy the revision again to serve that one first")
    target = _for_target(dst, revision)
    now = dst.now()
    request_id = Request.make_id("promote", module, where, revision.id,
                                 dst.settings.environment, key or now.isoformat())
    detail = {"from_environment": where, "from_request": doc.request_id,
              "from_revision": revision.id, "from_at": doc.updated_at.isoformat(),
              **({"user": user} if user else {}), **({"forced": why} if why and force else {})}
    return Request(request_id, RequestKind.PROMOTE, module,
                   Trigger(trigger_source, f"promote {revision.id} from {where}", detail),
                   replace(target, image=revision.image, image_digest=revision.image_digest),
                   now, Intent(now, request_id))


def _not_proven(services: Services, module: str, revision: Revision, request_id: str) -> str:
    """Why ``revision`` is not yet proven in ``services``' environment ("" when it is)."""
    got = services.state.module(module)
    doc = got.value if got else None
    if doc is not None and doc.baking is not None and doc.baking.revision_id == revision.id:
        return f"it is still in its bake window (until {doc.baking.until:%H:%M} UTC)"
    if doc is not None and doc.refusal(revision) is not None:
        return "it was rolled back there on its own"
    entries = [e for e in services.state.history(module) if e.request_id == request_id]
    if not entries:
        return "its history there does not say it succeeded"
    if entries[-1].outcome is not RunStatus.SUCCEEDED:
        return f"its request ended {entries[-1].outcome.value}"
    return ""


def _for_target(dst: Services, revision: Revision) -> Revision:
    """The revision as the target environment serves it: the same bundle and code, the target's
    configuration, its Key Vault references pinned to today's versions."""
    _, chunks = dst.bundles.open(revision.bundle)
    with work_folder() as work:
        module = load_archive(ChunkReader(chunks), work, dst.limits, label=revision.bundle,
                              expected_name=module_from_blob_name(revision.bundle)
                              ).for_environment(dst.settings.environment)
        module, pins = secret_pins.pin(module, dst.secrets, source=revision.bundle)
        target = Revision.of(module, dst.settings.config_digest_key.reveal(),
                             bundle=revision.bundle, secrets=pins)
    if target.code_digest != revision.code_digest:
        raise NotFound(f"bundle {revision.bundle} no longer holds revision {revision.id}'s code")
    return target
