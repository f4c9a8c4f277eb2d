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
from collections.abc import Mapping

from deployer.errors import ConfigError

PREFIX = "DEPLOYER_ENV__"
NAME = re.compile(r"^[a-z][a-z0-9-]{0,19}$")
#: what an installation without DEPLOYER_ENVIRONMENTS calls its one environment
DEFAULT = "default"


def names(raw: str) -> tuple[str, ...]:
    """``dev,prod`` -> ('dev', 'prod'); a name must be short lowercase letters, digits, '-'."""
    found = tuple(n.strip() for n in raw.split(",") if n.strip())
    bad = [n for n in found if not NAME.match(n)]
    if bad:
        raise ValueError(f"names environments that are not lowercase letters, digits and '-' "
                         f"(at most 20, a letter first): {', '.join(map(repr, bad))}")
    if len(set(found)) != len(found):
        raise ValueError("names an environment twice")
    return found


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
    if problems:
        raise ConfigError(problems)
    if not known:
        return dict(environ), ""
    name = chosen or known[0]
    seen = dict(environ)
    seen.update(overlays.get(name, {}))
    if "DEPLOYER_STATE_CONTAINER" not in overlays.get(name, {}):
        base = environ.get("DEPLOYER_STATE_CONTAINER") or "deployer-state"
        seen["DEPLOYER_STATE_CONTAINER"] = f"{base}-{name}"
    return seen, name
