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
        api = values.get("PREFECT_API_URL", "")
        url = urlsplit(api)
        if url.hostname not in LOOPBACK or not url.port:
            where = api or "(PREFECT_API_URL unset)"
            started.lines.append(f"Prefect: {where} is not on this machine, not started")
        elif devservices.prefect_healthy(api):
            started.lines.append(f"Prefect: a server already answers at {api}, used as it is")
        else:
            if devservices.port_open(url.port):
                raise ConfigError([f"PREFECT_API_URL {api}: port {url.port} is in use by something "
                                   "that is not a Prefect server"])
            stack.enter_context(devservices.prefect_server(home / "services" / "prefect",
                                                           port=url.port, ui=True))
            started.lines.append(f"Prefect: server on {api}; data in {home / 'services' / 'prefect'}")
        if url.hostname in LOOPBACK and url.port:
            started.lines.append(f"Prefect UI: http://127.0.0.1:{url.port}/")
        yield started
