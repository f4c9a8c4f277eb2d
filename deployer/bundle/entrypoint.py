"""The ENTRYPOINT a module's image runs, read from its Dockerfile.

An ACI container's ``command`` replaces the image's ENTRYPOINT (ACI has no separate arguments),
so the agent's command must put the image's own entrypoint back in front of the worker: without
it, Prefect's image loses ``tini`` (the worker runs as PID 1 with nobody reaping the flow-run
processes it forks) and its ``entrypoint.sh`` (``EXTRA_PIP_PACKAGES``). The last stage decides:
an exec-form ENTRYPOINT is used as written; none, on Prefect's image (from Docker Hub or a
registry mirror of it), is that image's own; a shell-form ENTRYPOINT ignores arguments, so it
cannot run the worker, which :func:`check_entrypoint` reports at validate time.
"""

from __future__ import annotations

import json
import re

from deployer.errors import Problem

#: prefecthq/prefect's ENTRYPOINT (its Dockerfile: tini as init, -g to signal the whole group)
PREFECT_ENTRYPOINT = ("/usr/bin/tini", "-g", "--", "/opt/prefect/entrypoint.sh")
_PREFECT_IMAGE = re.compile(r"^(?:[^/]+\.[^/]+/)?(?:docker\.io/)?(?:library/)?prefecthq/prefect(?::|@|$)")


def _instructions(data: bytes) -> list[tuple[int, str, str]]:
    from deployer.bundle.contract import _join_continuations

    out = []
    for line, content in _join_continuations(data.decode("utf-8", "replace").splitlines()):
        content = content.strip()
        if not content or content.startswith("#"):
            continue
        words = content.split(None, 1)
        out.append((line, words[0].upper(), words[1].strip() if len(words) == 2 else ""))
    return out


def _last_stage(data: bytes) -> list[tuple[int, str, str]]:
    found = _instructions(data)
    starts = [i for i, (_, instruction, _) in enumerate(found) if instruction == "FROM"]
    return found[starts[-1]:] if starts else found


def _entrypoint_line(stage: list[tuple[int, str, str]]) -> tuple[int, str] | None:
    """(line, arguments) of the stage's last ENTRYPOINT: the one Docker keeps."""
    found = [(line, args) for line, instruction, args in stage if instruction == "ENTRYPOINT"]
    return found[-1] if found else None


def _exec_form(args: str) -> tuple[str, ...] | None:
    try:
        parsed = json.loads(args)
    except ValueError:
        return None
    if isinstance(parsed, list) and parsed and all(isinstance(x, str) for x in parsed):
        return tuple(parsed)
    return None


def image_entrypoint(dockerfile: bytes | None) -> tuple[str, ...]:
    """What the image runs in front of its arguments; () when nothing is known to (a base image
    other than Prefect's with no ENTRYPOINT of its own: the worker then runs as given)."""
    if dockerfile is None:  # a pushed image: the contract's base, Prefect's image
        return PREFECT_ENTRYPOINT
    stage = _last_stage(dockerfile)
    declared = _entrypoint_line(stage)
    if declared:
        return _exec_form(declared[1]) or ()
    words = stage[0][2].split() if stage and stage[0][1] == "FROM" else []
    base = _expand(next((w for w in words if not w.startswith("--")), ""), _global_args(dockerfile))
    return PREFECT_ENTRYPOINT if _PREFECT_IMAGE.match(base.lower()) else ()


def _global_args(dockerfile: bytes) -> dict[str, str]:
    """``ARG NAME=default`` before the first FROM: what a FROM line may use."""
    found: dict[str, str] = {}
    for _, instruction, args in _instructions(dockerfile):
        if instruction == "FROM":
            break
        if instruction == "ARG" and "=" in args:
            name, _, default = args.partition("=")
            found[name.strip()] = default.strip().strip('"')
    return found


def _expand(word: str, args: dict[str, str]) -> str:
    """``${NAME}``, ``${NAME:-x}`` and ``$NAME`` with the ARG defaults (a build may pass others:
    the registry of a mirror of Prefect's image still names prefecthq/prefect)."""
    def value(match: re.Match[str]) -> str:
        name = match[1] or match[3]
        return args.get(name, match[2] or "")

    return re.sub(r"\$\{(\w+)(?::-([^}]*))?\}|\$(\w+)", value, word)


def check_entrypoint(dockerfile: bytes, path: str) -> list[Problem]:
    """A shell-form (or empty) ENTRYPOINT in the last stage cannot be given the worker command."""
    declared = _entrypoint_line(_last_stage(dockerfile))
    if declared is None:
        return []
    line, args = declared
    if _exec_form(args) is None:
        return [Problem(path, line, "ENTRYPOINT must be in exec form (e.g. ENTRYPOINT "
                        '["/usr/bin/tini", "-g", "--"]): the agent runs the worker as its '
                        "arguments, and a shell-form ENTRYPOINT ignores them")]
    return []
