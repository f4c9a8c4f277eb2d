"""Environments (``dev``, ``prod``, ...) served by one installation, in flat settings.

``DEPLOYER_ENVIRONMENTS=dev,prod`` names them, in promotion order. What differs per environment
is set as ``DEPLOYER_ENV__<env>__<SETTING>``: any setting declared ``per_environment`` (the
Prefect API and key, the agents' resource group and identity, the bake settings, approvals,
...), by its full name or without its ``DEPLOYER_`` prefix (``DEPLOYER_ENV__prod__APPROVAL``).

Each environment is kept apart from the others: its own state container (by default the
installation's ``DEPLOYER_STATE_CONTAINER`` with ``-<env>`` after it; set it per environment to
keep an existing installation's state and history as one environment's), its own agents (tagged
with their environment on ACI, in a folder of their own locally) and its own Prefect, when its
settings say so. Images, code and bundles are shared: a promotion reuses them.

Without ``DEPLOYER_ENVIRONMENTS`` an installation is one environment, ``default``, exactly as
before: nothing is renamed.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

from deployer.errors import ConfigError

PREFIX = "DEPLOYER_ENV__"
NAME = re.compile(r"^[a-z][a-z0-9-]{0,19}$")
#: what an installation without DEPLOYER_ENVIRONMENTS calls its one environment
DEFAULT = "default"


def names(raw: str) -> tuple[str, ...]:
    """``dev,prod`` -> ('dev', 'prod'); a name must be short lowercase letters, digits, '-'."""
    found = tuple(n.strip() for n in raw.split(",") if n.strip())
    from deployer.bundle.envfile import NOT_ENVIRONMENTS

    taken = [n for n in found if n in NOT_ENVIRONMENTS or n == DEFAULT]
    if taken:
        raise ValueError(f"names {', '.join(map(repr, taken))}, which cannot be an environment "
                         f"(.env.{taken[0]} is a module's documentation, not an overlay)"
                         if taken[0] != DEFAULT else "names 'default', the name of an "
                         "installation without environments")
    bad = [n for n in found if not NAME.match(n)]
    if bad:
        raise ValueError(f"names environments that are not lowercase letters, digits and '-' "
                         f"(at most 20, a letter first): {', '.join(map(repr, bad))}")
    if len(set(found)) != len(found):
        raise ValueError("names an environment twice")
    return found


def each_seen(environ: Mapping[str, str], per_environment: Mapping[str, str]) -> dict[str, dict[str, str]]:
    """Every environment's view of ``environ`` (none without environments); ``apply`` has
    checked the names already."""
    known = names(environ.get("DEPLOYER_ENVIRONMENTS", ""))
    overlays: dict[str, dict[str, str]] = {}
    for key, value in environ.items():
        env, _, setting = key[len(PREFIX):].partition("__")
        if key.startswith(PREFIX) and env in known and setting in per_environment:
            overlays.setdefault(env, {})[per_environment[setting]] = value
    return {env: _seen(environ, known, overlays, env) for env in known}


def apply(environ: Mapping[str, str], environment: str | None,
          per_environment: Mapping[str, str]) -> tuple[dict[str, str], str]:
    """(``environ`` as ``environment`` sees it, that environment's name). ``per_environment``:
    each overlayable setting's short name (without ``DEPLOYER_``) and full name -> full name.
    Every problem with the environments' settings is raised at once (``ConfigError``)."""
    try:
        known = names(environ.get("DEPLOYER_ENVIRONMENTS", ""))
    except ValueError as exc:
        raise ConfigError([f"DEPLOYER_ENVIRONMENTS {exc}"]) from None
    problems: list[str] = []
    overlays: dict[str, dict[str, str]] = {}
    for key, value in environ.items():
        if not key.startswith(PREFIX):
            continue
        env, _, setting = key[len(PREFIX):].partition("__")
        if env not in known:
            problems.append(f"{key}: {env!r} is not an environment of DEPLOYER_ENVIRONMENTS "
                            f"({', '.join(known) or 'none: set DEPLOYER_ENVIRONMENTS=dev,prod'})")
        elif setting not in per_environment:
            may = ", ".join(sorted(set(per_environment.values())))
            problems.append(f"{key}: {setting or '(nothing)'} is not a setting that may differ per "
                            f"environment (those that may: {may})")
        else:
            overlays.setdefault(env, {})[per_environment[setting]] = value
    chosen = environment or environ.get("DEPLOYER_ENVIRONMENT") or ""
    if known and chosen and chosen not in known:
        problems.append(f"there is no environment {chosen!r}: the environments are "
                        f"{', '.join(known)} (DEPLOYER_ENVIRONMENTS)")
    elif not known and chosen and chosen != DEFAULT:
        problems.append(f"there is no environment {chosen!r}: this installation has one, "
                        f"{DEFAULT!r} (set DEPLOYER_ENVIRONMENTS=dev,prod to have more)")
    for env in known:
        source = overlays.get(env, {}).get("DEPLOYER_AUTO_PROMOTE_FROM", "")
        if source and (source not in known or known.index(source) >= known.index(env)):
            problems.append(f"DEPLOYER_ENV__{env}__AUTO_PROMOTE_FROM: {source!r} must be an "
                            f"environment before {env!r} in DEPLOYER_ENVIRONMENTS ({', '.join(known)})")
    if not known:
        if problems:
            raise ConfigError(problems)
        return dict(environ), ""
    problems += _shared(environ, known, overlays)
    if problems:
        raise ConfigError(problems)
    name = chosen or known[0]
    return _seen(environ, known, overlays, name), name


def _seen(environ: Mapping[str, str], known: tuple[str, ...],
          overlays: Mapping[str, Mapping[str, str]], name: str) -> dict[str, str]:
    """``environ`` as environment ``name`` sees it: its overlay, and what keeps it apart."""
    seen = dict(environ)
    seen.update(overlays.get(name, {}))
    if "DEPLOYER_STATE_CONTAINER" not in overlays.get(name, {}):
        base = environ.get("DEPLOYER_STATE_CONTAINER") or "deployer-state"
        seen["DEPLOYER_STATE_CONTAINER"] = f"{base}-{name}"
    if name != known[0] and "DEPLOYER_AGENT_PREFIX" not in overlays.get(name, {}):
        # agents of two environments in one resource group must never share a name
        seen["DEPLOYER_AGENT_PREFIX"] = f"{environ.get('DEPLOYER_AGENT_PREFIX') or 'agent'}-{name}"
    return seen


def _shared(environ: Mapping[str, str], known: tuple[str, ...],
            overlays: Mapping[str, Mapping[str, str]]) -> list[str]:
    """What two environments must not share: a Prefect API (their pools, named by module,
    would be each other's) and an agent prefix (their agents' names)."""
    problems = []
    for key, what in (("PREFECT_API_URL", "Prefect API (each module's work pool would be both "
                       "environments')"), ("DEPLOYER_AGENT_PREFIX", "agent prefix")):
        owners: dict[str, str] = {}
        for env in known:
            value = _seen(environ, known, overlays, env).get(key, "")
            if value and value in owners:
                problems.append(f"environments {owners[value]} and {env} share the {what} "
                                f"{value!r}: set DEPLOYER_ENV__{env}__{key} to its own")
            owners.setdefault(value, env)
    return problems


def legacy(environ: Mapping[str, str], state_container: str) -> bool:
    """Whether an environment whose state is in ``state_container`` keeps the installation's
    state from before it had environments (the unsuffixed container): it also owns the agents
    made then (untagged on ACI, in the old folder locally)."""
    return state_container == (environ.get("DEPLOYER_STATE_CONTAINER") or "deployer-state")


def value_problems(environ: Mapping[str, str], chosen: str, per_environment: Mapping[str, str],
                   specs: Iterable[Any]) -> list[str]:
    """Every other environment's own values, parsed with their settings' parsers: a mistake in
    one is said whichever environment is read (each problem at once)."""
    problems = []
    for name, seen in each_seen(environ, per_environment).items():
        if name == chosen:
            continue
        for spec in specs:
            raw = seen.get(spec.env)
            if spec.per_environment and raw:
                try:
                    spec.parse(raw)
                except ValueError as exc:
                    problems.append(f"environment {name}: {spec.env} {exc}")
    return problems
