"""Key Vault references of a module's ``.env``: pinned to a version when a bundle is accepted,
read (that version) when an agent starts.

Pinning replaces each reference without a version by the same reference with the secret's
current version; the pins travel in the revision (``Revision.secrets``: key and versioned
SecretUri, never a value), so the config digest covers them, a reload of the bundle gets the same
digest, a rollback gets the versions it ran with, and a rotated secret is a new configuration.
A reference that cannot be read rejects the bundle before anything runs, naming the key, secret
and vault.
"""

from __future__ import annotations

from dataclasses import replace

from deployer.bundle import Module
from deployer.bundle.envfile import ENV_FILE, EnvFile
from deployer.bundle.keyvault_ref import PREFIX, SecretRef, is_reference, parse_reference
from deployer.errors import BundleInvalid, Problem, SecretUnavailable
from deployer.ports.secrets import SecretResolver

Pins = tuple[tuple[str, str], ...]  # (key, versioned SecretUri)


def references(env: EnvFile) -> dict[str, SecretRef]:
    return {key: parse_reference(value) for key, value in env.pairs if is_reference(value)}


def pin(module: Module, resolver: SecretResolver, *, source: str = "bundle") -> tuple[Module, Pins]:
    """The module with every reference pinned to a version (a version written in ``.env`` stays),
    and the pins; a reference that cannot be read is a problem of the bundle."""
    refs = references(module.env)
    if not refs:
        return module, ()
    pins: list[tuple[str, str]] = []
    problems: list[Problem] = []
    for key, ref in refs.items():
        try:
            version = ref.version or resolver.latest_version(ref)
        except SecretUnavailable as exc:
            problems.append(Problem(ENV_FILE, None, f"{key}: Key Vault reference: {exc.message}"
                                    + (f" ({exc.hint})" if exc.hint else "")))
            continue
        pins.append((key, ref.pinned(version).uri))
    if problems:
        raise BundleInvalid(problems, source=source)
    return apply(module, tuple(pins)), tuple(pins)


def apply(module: Module, pins: Pins) -> Module:
    """The module's ``.env`` with these pins in place of its references (a recorded revision's)."""
    if not pins:
        return module
    pinned = dict(pins)
    pairs = tuple((k, f"{PREFIX}SecretUri={pinned[k]})" if k in pinned else v) for k, v in module.env.pairs)
    return replace(module, env=replace(module.env, pairs=pairs))


def resolve(env: dict[str, str], resolver: SecretResolver) -> dict[str, str]:
    """``env`` with each (pinned) reference replaced by its secret's value: what the agent gets,
    as secure values only."""
    out = {}
    for key, value in env.items():
        if not is_reference(value):
            out[key] = value
            continue
        try:
            out[key] = resolver.value(parse_reference(value))
        except SecretUnavailable as exc:
            raise SecretUnavailable(f"{key}: Key Vault reference: {exc.message}", hint=exc.hint) from exc
    return out
