"""``deployer dev --services`` (``make dev``): the daily local loop in one command. Azurite and a
Prefect server with its UI are started on the addresses the settings name, with their data under
``<DEPLOYER_HOME>/services/`` so that it survives a restart, next to the host; stopped again (by
the PIDs started here) when the host stops. A service already answering on its address is used
as it is and left alone; one the settings put elsewhere (Prefect Cloud, a storage account) is not
started at all.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from deployer import connection_string, devservices
from deployer.config import environments
from deployer.errors import ConfigError

#: what UseDevelopmentStorage=true means: Azurite's default ports
DEFAULT_AZURITE_PORTS = (10000, 10001, 10002)
LOOPBACK = ("127.0.0.1", "localhost")


@dataclass
class Started:
    lines: list[str] = field(default_factory=list)  # what runs where, for the user


def azurite_ports(storage: str) -> tuple[int, int, int] | None:
    """The loopback ports the storage setting points at, or None when it is not Azurite's."""
    parts = connection_string.parse(storage)
    if parts.get("UseDevelopmentStorage", "").lower() == "true":
        return DEFAULT_AZURITE_PORTS
    blob, queue = urlsplit(parts.get("BlobEndpoint", "")), urlsplit(parts.get("QueueEndpoint", ""))
    if blob.hostname not in LOOPBACK or queue.hostname not in LOOPBACK or not blob.port or not queue.port:
        return None
    table = urlsplit(parts.get("TableEndpoint", ""))
    return blob.port, queue.port, table.port or devservices.free_port()


@contextlib.contextmanager
def services(values: dict[str, str], home: Path) -> Iterator[Started]:
    started = Started()
    with contextlib.ExitStack() as stack:
        storage = values.get("AzureWebJobsStorage", "")
        ports = azurite_ports(storage) if storage else None
        if ports is None:
            started.lines.append("storage: not Azurite on this machine, not started")
        elif devservices.port_open(ports[0]) and devservices.port_open(ports[1]):
            started.lines.append(f"storage: Azurite already answers on 127.0.0.1:{ports[0]}, used as it is")
        else:
            server = devservices.AzuriteServer(home / "services" / "azurite", ports)
            server.start()
            stack.callback(server.stop)
            started.lines.append(f"storage: Azurite on 127.0.0.1:{ports[0]} (blob), {ports[1]} (queue); "
                                 f"data in {server.base}")
        for label, api, data in prefect_servers(values, home):
            _prefect(stack, started, label, api, data)
        yield started


def prefect_servers(values: dict[str, str], home: Path) -> list[tuple[str, str, Path]]:
    """(who uses it, API URL, data folder) of each Prefect server the settings name: the
    installation's, and each environment's own (``DEPLOYER_ENV__<env>__PREFECT_API_URL``), so
    that environments' flows, deployments and runs stay apart locally as in the cloud."""
    base = values.get("PREFECT_API_URL", "")
    out = [("Prefect", base, home / "services" / "prefect")]
    for key, api in sorted(values.items()):
        env, _, name = key.removeprefix(environments.PREFIX).partition("__")
        if key.startswith(environments.PREFIX) and name == "PREFECT_API_URL" and api != base:
            out.append((f"Prefect of {env}", api, home / "services" / f"prefect-{env}"))
    return out


def _prefect(stack: contextlib.ExitStack, started: Started, label: str, api: str,
             data: Path) -> None:
    url = urlsplit(api)
    if url.hostname not in LOOPBACK or not url.port:
        started.lines.append(f"{label}: {api or '(PREFECT_API_URL unset)'} is not on this machine, "
                             "not started")
        return
    if devservices.prefect_healthy(api):
        started.lines.append(f"{label}: a server already answers at {api}, used as it is")
    else:
        if devservices.port_open(url.port):
            raise ConfigError([f"{label} {api}: port {url.port} is in use by something that is "
                               "not a Prefect server"])
        stack.enter_context(devservices.prefect_server(data, port=url.port, ui=True))
        started.lines.append(f"{label}: server on {api}; data in {data}")
    started.lines.append(f"{label} UI: http://127.0.0.1:{url.port}/")
