"""``AgentRuntime`` on Azure Container Instances: one container group per agent.

A group is named ``<prefix>-<module>-<UTC yyyymmddHHMMSS>`` (the old deploy.sh's naming, so the
groups it made are recognised), tagged with managed-by, module, revision and queue; Linux, restart
policy Always, CPU and memory as the module asks (``bundle.sizing``; the settings by default); its
one container runs
``prefect worker start --pool <module> --name <group> --work-queue <group> --type process``
behind the agent's preflight and the image's own ENTRYPOINT (tini on Prefect's image).
Every ``.env`` value and ``PREFECT_API_KEY`` is a ``secureValue`` (never returned by ARM, never
logged); only non-secret settings are plain ``value``s. The image is pulled with the user-assigned
managed identity (AcrPull) when configured; registry credentials are only a fallback.

Creation and deletion are started without waiting on ARM's long-running operations (``polling=
False``): the pipeline's health check waits for the worker itself, and ACI's 30-90 s deletion runs
on while the pipeline moves on. A name is never reused: a new agent's name carries the time and is
unique among the groups listed, those being deleted included (ACI refuses a PUT on a group it is
still deleting). State comes from a GET per group (a list carries no instance view).

With environments (``config.environments``) each group is tagged with its environment, and an
environment lists only its own, so that environments may share a resource group.

A module with ``isolation: run`` has no agent: the same runtime starts a group per flow run
(``Role.RUN``: restart Never, ``python -m prefect.engine`` for that run, the deployment's size;
named ``<prefix>-run-<flow run id>``) and one to prove a revision's flows load (``Role.CHECK``,
the preflight alone). They are created straight through the ACI API, like the agents: no ARM
deployment, so a resource group's deployment history (800 at most) never fills up however many
runs there are. Their ``role`` and ``flow-run`` tags tell them apart; ``list`` gives one role.
"""

from __future__ import annotations

import logging
import re
from datetime import UTC, datetime
from typing import Any

from azure.core.exceptions import ResourceNotFoundError

from deployer import preflight
from deployer.adapters.azure_clients import AzureClients
from deployer.adapters.azure_errors import azure_errors
from deployer.ports.agents import AgentInfo, AgentSpec, AgentState, Role

logger = logging.getLogger(__name__)
MANAGED_BY = "prefect-collective-deployer"
CONTAINER = "agent"
TIMESTAMP = r"\d{14}(?:-\d+)?"


class AciAgentRuntime:
    #: a container group is provisioned and its worker ONLINE 35-110 s after the create call
    expected_start_seconds = 60.0

    def __init__(self, clients: AzureClients) -> None:
        self._c = clients
        self._s = clients.settings

    @property
    def _group(self) -> str:
        return self._s.resource_group

    def start(self, spec: AgentSpec) -> AgentInfo:
        from azure.mgmt.containerinstance import models as m

        env = [m.EnvironmentVariable(name=k, secure_value=v) for k, v in sorted(spec.env.items())]
        env += [m.EnvironmentVariable(name=k, value=v) for k, v in sorted(spec.settings.items())]
        if self._s.agent_identity_client_id:  # DefaultAzureCredential in the pull steps uses it
            env.append(m.EnvironmentVariable(name="AZURE_CLIENT_ID", value=self._s.agent_identity_client_id))
        identity = None
        if self._s.agent_identity:
            identity = m.ContainerGroupIdentity(type="UserAssigned", user_assigned_identities={
                self._s.agent_identity: m.UserAssignedIdentities()})
            credentials = [m.ImageRegistryCredential(server=self._s.registry_server,
                                                     identity=self._s.agent_identity)]
        else:
            credentials = [m.ImageRegistryCredential(server=self._s.registry_server,
                                                     username=self._s.registry_username,
                                                     password=self._s.registry_password.reveal())]
        group = m.ContainerGroup(
            location=self._s.location, os_type="Linux", identity=identity,
            restart_policy="Always" if spec.role is Role.AGENT else "Never",
            tags=_tags(spec, self._s.environment),
            image_registry_credentials=credentials,
            containers=[m.Container(
                name=CONTAINER, image=spec.image.ref,
                command=_command(spec),
                environment_variables=env,
                resources=m.ResourceRequirements(requests=m.ResourceRequests(
                    cpu=spec.cpu or self._s.agent_cpu,
                    memory_in_gb=spec.memory_gb or self._s.agent_memory_gb)))])
        with azure_errors(f"create container group {spec.name} in resource group {self._group}"):
            self._c.aci.container_groups.begin_create_or_update(self._group, spec.name, group,
                                                                polling=False)
        logger.info("aci.create_started group=%s revision=%s", spec.name, spec.revision_id)
        return AgentInfo(spec.name, spec.module, spec.revision_id, spec.queue, AgentState.STARTING,
                         None, "Pending")

    def get(self, name: str) -> AgentInfo | None:
        with azure_errors(f"read container group {name}"):
            try:
                group = self._c.aci.container_groups.get(self._group, name)
            except ResourceNotFoundError:
                return None
        return self._info(group)

    def list(self, module: str | None = None, *, detailed: bool = True,
             role: Role = Role.AGENT) -> list[AgentInfo]:
        with azure_errors(f"list container groups of resource group {self._group}"):
            groups = [g for g in self._c.aci.container_groups.list_by_resource_group(self._group)
                      if self._ours(g, module) and _role(g) is role]
        if not detailed:
            return [self._info(g) for g in groups]  # provisioning state only
        found = [self.get(g.name) for g in groups]  # a list carries no instance view
        return [info for info in found if info is not None]

    def stop(self, name: str) -> None:
        with azure_errors(f"delete container group {name}"):
            try:
                self._c.aci.container_groups.begin_delete(self._group, name, polling=False)
            except ResourceNotFoundError:
                return
        logger.info("aci.delete_started group=%s", name)

    def logs(self, name: str, tail: int = 50) -> str:
        with azure_errors(f"read the logs of container group {name}"):
            try:
                return str(self._c.aci.containers.list_logs(self._group, name, CONTAINER,
                                                            tail=tail).content or "")
            except ResourceNotFoundError:
                return ""

    # -- mapping --------------------------------------------------------------------------------

    def module_of(self, group: Any) -> str | None:
        """The module a group serves: its tag, or the seed's name pattern for untagged groups."""
        tags = group.tags or {}
        if tags.get("managed-by") == MANAGED_BY:
            return str(tags.get("module") or "") or None
        match = re.fullmatch(rf"{re.escape(self._s.agent_prefix)}-(?P<module>[a-z][a-z0-9-]*?)-{TIMESTAMP}",
                             group.name or "")
        return match["module"] if match else None

    def _ours(self, group: Any, module: str | None) -> bool:
        """A group of this environment (its tag; untagged: the installation's only one) and of
        ``module`` (any when None)."""
        found = self.module_of(group)
        tag = str((group.tags or {}).get("environment", ""))
        return found is not None and (module is None or found == module) and (
            tag == self._s.environment or (not tag and self._s.legacy_agents))

    def _info(self, group: Any) -> AgentInfo:
        tags = group.tags or {}
        provisioning = group.provisioning_state or ""
        view = group.instance_view.state if group.instance_view else None
        container = (group.containers or [None])[0]
        current, exit_code = None, None
        events: list[Any] = []
        if container is not None and container.instance_view is not None:
            state_now = container.instance_view.current_state
            current = state_now.state if state_now else None
            exit_code = state_now.exit_code if state_now else None
            events = container.instance_view.events or []
        # ARM documents no provisioning state for a deletion in progress (Succeeded, Failed and
        # Canceled are the terminal ones; the rest are the provider's own): a group is gone when
        # its GET answers 404, and deleting it again meanwhile is harmless (DELETE is idempotent)
        once = _role(group) is not Role.AGENT  # restart policy Never: it ends when it exits
        if provisioning in ("Failed", "Canceled") or view == "Failed":
            state = AgentState.FAILED
        elif view in ("Stopped", "Terminated") or (once and (view == "Succeeded"
                                                             or current == "Terminated")):
            # a Never group whose container exited 0 reads Succeeded (ACI's container states)
            state = AgentState.STOPPED
        elif provisioning == "Succeeded" and view == "Running" and current in (None, "Running"):
            state = AgentState.RUNNING
        else:
            state = AgentState.STARTING
        detail = "/".join(x for x in (provisioning, view, current) if x)
        if exit_code is not None:  # a run's or a check's container that ended
            detail += f" (exit code {exit_code})"
        if events and state is not AgentState.RUNNING:
            detail += f": {events[-1].message}"
        return AgentInfo(name=group.name, module=self.module_of(group) or "",
                         revision_id=str(tags.get("revision", "")), queue=str(tags.get("queue", group.name)),
                         state=state, started_at=started_at(group.name or ""), detail=detail,
                         role=_role(group), flow_run_id=str(tags.get("flow-run", "")))


def _tags(spec: AgentSpec, environment: str) -> dict[str, str]:
    tags = {"managed-by": MANAGED_BY, "module": spec.module, "revision": spec.revision_id,
            "queue": spec.queue}
    if environment:  # environments may share a resource group: each lists its own
        tags["environment"] = environment
    if spec.role is not Role.AGENT:
        tags["role"] = spec.role.value
    if spec.flow_run_id:
        tags["flow-run"] = spec.flow_run_id
    return tags


def _role(group: Any) -> Role:
    try:
        return Role((group.tags or {}).get("role", Role.AGENT.value))
    except ValueError:
        return Role.AGENT


def _command(spec: AgentSpec) -> list[str]:
    """The worker, behind the preflight that proves the revision's flows load in the image, both
    behind the image's own ENTRYPOINT (a group's command replaces it: ``bundle.entrypoint``).
    A run's group runs its flow run; a check's, the preflight alone."""
    if spec.role is Role.RUN:
        return [*spec.entrypoint, "python", "-m", "prefect.engine"]
    if spec.role is Role.CHECK:
        return [*spec.entrypoint, *preflight.command("python", spec.image.working_dir,
                                                      list(spec.entrypoints), [],
                                                      list(spec.pull_steps))]
    worker = ["worker", "start", "--pool", spec.pool, "--name", spec.name, "--work-queue",
              spec.queue, "--type", "process"]
    if not spec.entrypoints:
        return [*spec.entrypoint, "prefect", *worker]
    return [*spec.entrypoint, *preflight.command("python", spec.image.working_dir,
                                                  list(spec.entrypoints), worker,
                                                  list(spec.pull_steps), spec.checks)]


def started_at(name: str) -> datetime | None:
    """The UTC time in an agent's name (``...-20261128061500``), when it has one."""
    match = re.search(r"-(\d{14})(?:-\d+)?$", name)
    if match is None:
        return None
    try:
        return datetime.strptime(match[1], "%Y%m%d%H%M%S").replace(tzinfo=UTC)
    except ValueError:
        return None
