"""`.env` parsing. Values are secrets: no problem message ever quotes a value or a line.

Syntax (the subset that Docker's ``--env-file``, Compose and python-dotenv agree on):
``KEY=VALUE`` one per line, an optional ``export`` prefix, ``#`` comment lines, blank lines,
values optionally wrapped in single or double quotes (``\\"`` escapes a double quote). Keys are
``[A-Za-z_][A-Za-z0-9_]*`` and appear once. There are no inline comments and no multi-line values.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from deployer.bundle.keyvault_ref import is_reference, parse_reference
from deployer.errors import Problem

ENV_FILE = ".env"
#: the suffixes a ``.env.<suffix>`` has when it documents ``.env`` (``.env.example``, which
#: ``deployer new`` writes): ordinary files of the module, never an environment's overlay, and
#: names no environment may take (``config.environments``)
NOT_ENVIRONMENTS = frozenset({"example", "sample", "template", "dist", "defaults"})
_OVERLAY = re.compile(r"^\.env\.([a-z][a-z0-9-]{0,19})$")


def overlay_of(path: str) -> str | None:
    """The environment a ``.env.<env>`` overrides ``.env`` for; None for any other file."""
    match = _OVERLAY.match(path)
    return match[1] if match and match[1] not in NOT_ENVIRONMENTS else None


def is_env_file(path: str) -> bool:
    """``.env`` or an environment's ``.env.<env>``: secrets, never code, never in an image."""
    return path == ENV_FILE or overlay_of(path) is not None
_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
#: a value reaches the agent as one environment variable; Linux refuses a variable longer than
#: 128 KiB (MAX_ARG_STRLEN) and every value rides in the container group's ARM request, so keep
#: each well under that
MAX_VALUE_BYTES = 32 * 1024
#: all values together (the whole environment of a process is bounded by ARG_MAX, 2 MiB)
MAX_TOTAL_BYTES = 256 * 1024
#: keys the deployer sets for the agent itself; a .env value for them would be overridden
RESERVED_KEYS = ("PREFECT_API_URL", "PREFECT_API_KEY", "PREFECT_WORKER_QUERY_SECONDS",
                 "PREFECT_WORKER_PREFETCH_SECONDS", "PREFECT_WORKER_HEARTBEAT_SECONDS",
                 "PREFECT_HOME", "DEPLOYER_RUN_MEMORY_LIMIT_BYTES")
#: what azure-identity's DefaultAzureCredential reads from the environment: in an agent's
#: environment they would change the identity its flow runs fetch their code with (the code
#: store's pull step): EnvironmentCredential comes first, and AZURE_CLIENT_ID picks the managed
#: identity. The deployer sets AZURE_CLIENT_ID itself (the agents' identity).
IDENTITY_KEYS = ("AZURE_CLIENT_ID", "AZURE_TENANT_ID", "AZURE_CLIENT_SECRET",
                 "AZURE_CLIENT_CERTIFICATE_PATH", "AZURE_CLIENT_CERTIFICATE_PASSWORD",
                 "AZURE_CLIENT_SEND_CERTIFICATE_CHAIN", "AZURE_FEDERATED_TOKEN_FILE",
                 "AZURE_USERNAME", "AZURE_PASSWORD", "AZURE_AUTHORITY_HOST",
                 "AZURE_ADDITIONALLY_ALLOWED_TENANTS", "IDENTITY_ENDPOINT", "IDENTITY_HEADER",
                 "MSI_ENDPOINT", "MSI_SECRET")


@dataclass(frozen=True)
class EnvFile:
    """Parsed ``.env``: ordered (key, value) pairs. ``repr`` shows keys only."""

    pairs: tuple[tuple[str, str], ...] = ()
    problems: tuple[Problem, ...] = field(default=(), repr=False)

    @property
    def keys(self) -> tuple[str, ...]:
        return tuple(k for k, _ in self.pairs)

    def as_dict(self) -> dict[str, str]:
        return dict(self.pairs)

    def __repr__(self) -> str:
        return f"EnvFile(keys={list(self.keys)!r})"


def parse_env(data: bytes, *, filename: str = ENV_FILE) -> EnvFile:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return EnvFile(problems=(Problem(filename, None, "is not UTF-8 text"),))
    if text.startswith("\ufeff"):
        text = text[1:]
    pairs: list[tuple[str, str]] = []
    problems: list[Problem] = []
    first_line: dict[str, int] = {}
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if "\x00" in line:
            problems.append(Problem(filename, number, "contains a NUL character"))
            continue
        if line.startswith("export ") or line.startswith("export\t"):
            line = line[len("export"):].lstrip()
        key, sep, rest = line.partition("=")
        key = key.strip()
        if not sep:
            problems.append(Problem(filename, number, "expected KEY=VALUE (no '=' on this line)"))
            continue
        if not _KEY.match(key):
            problems.append(
                Problem(filename, number, "invalid variable name (use letters, digits and _)")
            )
            continue
        value, error = _unquote(rest.strip())
        if error:
            problems.append(Problem(filename, number, f"{error} for {key}"))
            continue
        if key in first_line:
            problems.append(
                Problem(filename, number, f"duplicate key {key} (first set on line {first_line[key]})")
            )
            continue
        if len(value.encode()) > MAX_VALUE_BYTES:
            problems.append(Problem(filename, number, f"the value of {key} is larger than "
                                    f"{MAX_VALUE_BYTES // 1024} KiB, too large for an environment "
                                    "variable of the agent; put large data in a file or a secret "
                                    "store the flow reads"))
            continue
        if is_reference(value):
            try:
                parse_reference(value)
            except ValueError as exc:
                problems.append(Problem(filename, number, f"{key}: {exc}"))
                continue
        if key in RESERVED_KEYS:
            problems.append(Problem(filename, number, f"{key} is set by the deployer for the agent "
                                    "(DEPLOYER settings); remove it from .env"))
            continue
        if key in IDENTITY_KEYS:
            problems.append(Problem(filename, number, f"{key} would change the Azure identity the "
                                    "agent's flow runs fetch their code with (azure-identity reads "
                                    "it); give it another name (e.g. MYAPP_" + key.removeprefix(
                                        "AZURE_") + ") and pass it to your client explicitly"))
            continue
        first_line[key] = number
        pairs.append((key, value))
    total = sum(len(k.encode()) + len(v.encode()) + 2 for k, v in pairs)
    if total > MAX_TOTAL_BYTES:
        problems.append(Problem(filename, None, f"its values add up to {total // 1024} KiB, more "
                                f"than the {MAX_TOTAL_BYTES // 1024} KiB an agent's environment "
                                "can carry"))
    return EnvFile(pairs=tuple(pairs), problems=tuple(problems))


def _unquote(value: str) -> tuple[str, str | None]:
    """Strip one pair of quotes. Unquoted values are taken literally, like Docker does."""
    if not value or value[0] not in "\"'":
        return value, None
    quote = value[0]
    if quote == "'":
        if len(value) < 2 or value[-1] != "'":
            return "", "unterminated quoted value"
        if "'" in value[1:-1]:
            return "", "single quote inside single-quoted value"
        return value[1:-1], None
    out: list[str] = []
    i = 1
    while i < len(value):
        char = value[i]
        if char == "\\" and i + 1 < len(value) and value[i + 1] in "\"\\":
            out.append(value[i + 1])
            i += 2
            continue
        if char == '"':
            if i != len(value) - 1:
                return "", "text after the closing quote"
            return "".join(out), None
        out.append(char)
        i += 1
    return "", "unterminated quoted value"
