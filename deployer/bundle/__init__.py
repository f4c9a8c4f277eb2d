"""Flow bundles: validate a module folder or archive, pack it deterministically, digest it.

    load_folder(path)            -> Module    (flows/<module>/ on disk)
    load_archive(stream, ...)    -> Module    (a .tar.gz or .zip, extracted safely)
    pack(module.tree, out)       -> Packed    (deterministic tar.gz + code digest)

Both loaders raise ``BundleInvalid`` listing every problem. An archive may hold the module
folder (``finance/...``, what ``deployer bundle`` writes) or the folder's contents at its root.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from deployer.bundle import sizing
from deployer.bundle.archive import ARCHIVE_SUFFIXES, BundleLimits, Readable, extract
from deployer.bundle.contract import check_module, check_name
from deployer.bundle.digest import config_digest, short
from deployer.bundle.envfile import EnvFile
from deployer.bundle.pack import Packed, code_digest_of, pack
from deployer.bundle.parts import Dependencies, dependencies_of
from deployer.bundle.prefect_yaml import DeploymentSpec
from deployer.bundle.sizing import NO_OPTIONS, ModuleOptions, Size
from deployer.bundle.tree import Tree, scan
from deployer.errors import BundleInvalid, Problem
from deployer.names import module_folder

if TYPE_CHECKING:
    from deployer.ports.orchestrator import DeploymentChecker

__all__ = [
    "BLOB_FORMS", "BundleLimits", "DeploymentSpec", "EnvFile", "Module", "Packed", "Tree",
    "blob_name_problem", "config_digest", "load_archive", "load_folder", "module_from_blob_name",
    "pack", "short",
]


@dataclass(frozen=True)
class Module:
    """A module that passed validation, on disk at ``tree.root``."""

    name: str
    tree: Tree
    env: EnvFile
    deployments: tuple[DeploymentSpec, ...]
    #: what validation found worth saying that is no problem
    notes: tuple[str, ...] = ()
    #: prefect.yaml's own ``deployer:`` section (the agent's size, ``sizing``)
    options: ModuleOptions = NO_OPTIONS
    #: ``.env.<environment>`` files: each environment's values over ``.env``'s
    env_overlays: tuple[tuple[str, EnvFile], ...] = ()

    @property
    def root(self) -> Path:
        return self.tree.root

    def for_environment(self, environment: str) -> Module:
        """The module as ``environment`` deploys it: its ``.env`` with ``.env.<environment>``'s
        keys over it (its config digest and pinned secrets are that environment's)."""
        overlay = dict(self.env_overlays).get(environment)
        if overlay is None:
            return self
        merged = {**self.env.as_dict(), **overlay.as_dict()}
        return dataclasses.replace(self, env=EnvFile(tuple(merged.items())))

    def code_digest(self) -> str:
        return code_digest_of(self.tree)

    def config_digest(self, key: str) -> str:
        """``.env``, and the sizes the agent is made from when the module names any (a change
        of them restarts the agent; a module that names none keeps the digest it had)."""
        return config_digest([*self.env.pairs, *sizing.digest_pairs(self.options, self.deployments)],
                             key)

    def has_config_digest(self, key: str, digest: str) -> bool:
        """Whether ``digest`` is this module's config digest: today's, or for a revision
        accepted before sizes joined the digest, ``.env``'s alone."""
        return digest in (self.config_digest(key), config_digest(self.env.pairs, key))

    def agent_size(self, default: Size) -> Size:
        return sizing.agent_size(self.options, self.deployments, default)

    def dependencies(self) -> Dependencies:
        """What the image is built from, by the rule of ``bundle.parts``."""
        return dependencies_of(self.tree)


def load_folder(path: Path, limits: BundleLimits, *, name: str | None = None,
                checker: DeploymentChecker | None = None) -> Module:
    path = module_folder(Path(path))
    label = str(path)
    return _check(scan(path.resolve(), limits), name or path.resolve().name, label, checker=checker)


def load_archive(stream: Readable, workdir: Path, limits: BundleLimits, *, label: str,
                 expected_name: str | None = None,
                 checker: DeploymentChecker | None = None) -> Module:
    """Extract under ``workdir`` (a fresh folder the caller owns and removes) and validate.

    ``expected_name``: the module the blob name announces; the archive must agree with it.
    ``checker``: the orchestrator's own view of the deployments' schedules (see ports).
    """
    extraction = extract(stream, workdir, limits, label=label)
    if extraction.problems:
        raise BundleInvalid(extraction.problems, source=label)
    root, name = _layout(extraction.dest, expected_name, label)
    problems: list[Problem] = []
    if expected_name is not None and name != expected_name:
        problems.append(Problem(label, None, f"holds module {name!r} but its name says "
                                f"{expected_name!r}; upload it as {name}.tar.gz or rename the folder"))
    return _check(scan(root, limits), name, label, problems, checker=checker)


BLOB_FORMS = "<module>.tar.gz, <module>.zip or <module>/<anything>.tar.gz"


def blob_name_problem(blob_name: str) -> str | None:
    """Why a blob name is not one of the documented forms (None when it is one)."""
    if "/" in blob_name:
        rest = blob_name.split("/", 1)[1]
        if rest.endswith(".tar.gz") and rest.rsplit("/", 1)[-1] != ".tar.gz":
            return None
    elif blob_name.endswith((".tar.gz", ".zip")) and blob_name not in (".tar.gz", ".zip"):
        return None
    return f"is not a bundle name the deployer deploys ({BLOB_FORMS}); nothing was deployed"


def module_from_blob_name(blob_name: str) -> str:
    """``finance.tar.gz`` and ``finance/2026-11-28T...tar.gz`` both name module ``finance``."""
    if "/" in blob_name:
        return blob_name.split("/", 1)[0]
    for suffix in ARCHIVE_SUFFIXES:
        if blob_name.endswith(suffix):
            return blob_name[: -len(suffix)]
    return blob_name


def _layout(tree_dir: Path, expected: str | None, label: str) -> tuple[Path, str]:
    children = list(tree_dir.iterdir())
    if len(children) == 1 and children[0].is_dir():
        return children[0], children[0].name
    return tree_dir, expected or module_from_blob_name(Path(label).name)


def _check(tree: Tree, name: str, label: str, extra: list[Problem] | None = None, *,
           checker: DeploymentChecker | None = None) -> Module:
    result = check_module(tree, name)
    problems = [*(extra or []), *result.problems]
    if checker is not None and result.deployments:
        problems += checker.check(name, result.deployments)
    if problems:
        named = check_name(name)
        if named and set(problems) <= set(named):  # nothing in the files: the folder's name
            raise BundleInvalid(problems, source=label, hint=(
                "a module is named after its folder (or the archive's top folder): rename it, "
                "e.g. flows/risk-report"))
        raise BundleInvalid(problems, source=label)
    return Module(name=name, tree=tree, env=result.env, deployments=result.deployments,
                  notes=result.notes, options=result.options, env_overlays=result.env_overlays)
