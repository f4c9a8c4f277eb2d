"""``local.settings.json``: where the CLI finds it and how its ``Values`` are read.

* **Found the way git finds its folder:** ``--settings`` (or ``DEPLOYER_SETTINGS``) names the file,
  and a named file that does not exist is an error; otherwise the current folder, then each parent,
  is searched for ``local.settings.json``. No file found: the environment alone.
* **Merged under the environment**, as Functions Core Tools do: a value set in the environment wins.
* **Paths resolve against the file's folder**, never the current one: ``DEPLOYER_HOME`` (also its
  default, ``.deployer``) and ``DEPLOYER_VENV_DIR``, when relative and not from the environment.
  The same command run from any folder of the project sees the same agents and state.
* **Malformed files are errors that name the file and the key:** not JSON, ``Values`` that is not an
  object, a value that is not text (Core Tools reads only strings), encrypted settings. A key that
  looks like one of the deployer's but is not is a warning with the likely name.
"""

from __future__ import annotations

import difflib
import json
import logging
from collections.abc import Mapping
from pathlib import Path

from deployer.config import SETTINGS
from deployer.errors import ConfigError

logger = logging.getLogger(__name__)

FILE_NAME = "local.settings.json"
#: names the settings file when ``--settings`` does not
SETTINGS_VARIABLE = "DEPLOYER_SETTINGS"
#: settings that are paths on this machine
PATH_SETTINGS = ("DEPLOYER_HOME", "DEPLOYER_VENV_DIR")
_KNOWN = {spec.env for spec in SETTINGS}
_DEFAULTS = {spec.env: spec.default for spec in SETTINGS}


def locate(named: Path | None, environ: Mapping[str, str], cwd: Path) -> Path | None:
    """The settings file to read: the one named (which must exist), else the nearest
    ``local.settings.json`` in ``cwd`` or a parent of it, else None."""
    if named is None and environ.get(SETTINGS_VARIABLE):
        named = Path(environ[SETTINGS_VARIABLE])
        source = SETTINGS_VARIABLE
    else:
        source = "--settings"
    if named is not None:
        path = (cwd / named.expanduser()).resolve()
        if not path.is_file():
            what = "is a folder" if path.is_dir() else "does not exist"
            raise ConfigError([f"the settings file {named} ({source}) {what}"])
        return path
    for folder in (cwd.resolve(), *cwd.resolve().parents):
        candidate = folder / FILE_NAME
        if candidate.is_file():
            return candidate
    return None


def read_values(path: Path) -> dict[str, str]:
    """The ``Values`` of a settings file, every problem with it at once."""
    try:
        text = path.read_text(encoding="utf-8-sig")  # editors on Windows write a BOM
    except UnicodeDecodeError as exc:
        raise ConfigError([f"{path} is not UTF-8 text: {exc.reason} at byte {exc.start}"]) from exc
    except OSError as exc:
        raise ConfigError([f"{path} cannot be read: {exc.strerror or exc}"]) from exc
    try:
        document = json.loads(text)
    except ValueError as exc:
        raise ConfigError([f"{path} is not valid JSON: {exc}"]) from exc
    if not isinstance(document, dict):
        raise ConfigError([f"{path} must hold a JSON object with a 'Values' object, "
                           f"not {_kind(document)}"])
    if document.get("IsEncrypted") is True:
        raise ConfigError([f"{path} is encrypted (IsEncrypted: true): the deployer cannot read it; "
                           "`func settings decrypt` writes it back in plain text"])
    values = document.get("Values", {})
    if not isinstance(values, dict):
        raise ConfigError([f"{path}: 'Values' must be an object of settings, not {_kind(values)}"])
    problems = [f"{path}: Values.{key} must be text (in quotes), not {_kind(value)}"
                + (f': write "{_as_text(value)}"' if isinstance(value, bool | int | float) else "")
                for key, value in values.items() if not isinstance(value, str)]
    if problems:
        raise ConfigError(problems)
    for key in values:
        _warn_if_misspelt(path, key)
    return values


def merged(path: Path | None, environ: Mapping[str, str]) -> dict[str, str]:
    """The settings file's values under ``environ`` (the environment wins), with relative paths
    made absolute against the file's folder."""
    result = dict(environ)
    if path is None:
        return result
    values = read_values(path)
    for key, value in values.items():
        result.setdefault(key, value)
    for key in PATH_SETTINGS:
        if environ.get(key):
            continue  # the shell's own value: relative to where the command runs
        value = values.get(key) or _DEFAULTS.get(key) or ""
        if value and not Path(value).expanduser().is_absolute():
            result[key] = str((path.parent / value).resolve())
    return result


def _warn_if_misspelt(path: Path, key: str) -> None:
    if key in _KNOWN or not key.upper().startswith(("DEPLOYER_", "PREFECT_API", "CLEANUP_")):
        return
    close = difflib.get_close_matches(key.upper(), sorted(_KNOWN), n=1, cutoff=0.8)
    hint = f"; did you mean {close[0]}?" if close else ""
    logger.warning("%s: Values.%s is not a setting the deployer reads%s", path, key, hint)


def _kind(value: object) -> str:
    if value is None:
        return "null"
    return {bool: "true/false", int: "a number", float: "a number", str: "text",
            list: "a list", dict: "an object"}.get(type(value), type(value).__name__)


def _as_text(value: bool | int | float) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)
