"""How big a module's agent and each of its flow runs are, checked against what ACI accepts.

Sizes are written where Prefect users write them: a deployment's ``work_pool.job_variables``
``cpu`` (vCPU) and ``memory`` (GB), the names prefect-azure's ACI worker gives them, and the
module's agent in prefect.yaml's own top-level ``deployer:`` section (``prefect deploy`` ignores
it)::

    deployer:
      agent: {cpu: 2, memory: 4}
      isolation: agent      # or run: a container per flow run, no agent (``deployer.dispatch``)

What each one does:

* The agent (an ACI container group) gets the module's ``deployer.agent`` size. A module that
  names none gets the installation's ``DEPLOYER_AGENT_CPU`` / ``DEPLOYER_AGENT_MEMORY_GB``, raised
  to fit its biggest deployment plus ``AGENT_OVERHEAD_GB`` (its worker, warm checker and limiter).
  A deployment asking for more than a declared agent size leaves room for is a problem: its runs
  share that agent.
* A deployment's ``memory`` is the limit of each of its flow runs: the run's process and every
  process it starts, in resident memory, kept by the agent (``run_limits``). A run above it is
  stopped and ends CRASHED; the other deployments' runs are unaffected. Its ``cpu`` sizes the
  agent; the runs of one agent share its CPUs.

With ``isolation: run`` there is no agent: each flow run gets a container of its own, of its
deployment's ``cpu`` and ``memory`` (the installation's agent size when it names none), up to
ACI's limits; ``deployer.agent`` has no meaning then and is refused.

Locally (``uv`` venvs, worker processes) the agent's size is not applied; the runs' memory
limits are.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from deployer.bundle.prefect_yaml import PREFECT_YAML, DeploymentSpec
from deployer.errors import Problem
from deployer.run_limits import RUN_MEMORY_ENV

#: ACI's limits for a standard Linux container group without GPU, in most regions (Microsoft
#: Learn, "Resource availability & quota limits for ACI", read 2026-12; a region's own are
#: listed by the Location - List Capabilities API). Memory is requested in steps of 0.1 GB.
ACI_MAX_CPU = 4.0
ACI_MAX_MEMORY_GB = 16.0
ACI_SOURCE = "ACI's limit for a standard Linux container group (Microsoft Learn, 'Resource " \
             "availability & quota limits for ACI')"
#: a Prefect flow-run process alone takes about 0.2 GB: below this a run would not start
MIN_MEMORY_GB = 0.5
#: what an agent needs beside its runs: the worker, its warm checker and its limiter
AGENT_OVERHEAD_GB = 0.5
AGENT_KEYS = ("cpu", "memory")
SECTION_KEYS = ("agent", "isolation")
#: how a module's flow runs are run: by its always-on agent (the default), or each in a
#: container of its own (``deployer.dispatch``)
ISOLATIONS = ("agent", "run")
SIZE_KEYS = ("cpu", "memory")


@dataclass(frozen=True)
class Size:
    cpu: float
    memory_gb: float

    def describe(self) -> str:
        return f"{_number(self.cpu)} vCPU, {_number(self.memory_gb)} GB"


@dataclass(frozen=True)
class ModuleOptions:
    """prefect.yaml's top-level ``deployer:`` section, checked."""

    agent: Size | None = None  # the agent size the module declares
    isolation: str = "agent"  # ISOLATIONS

    @property
    def per_run(self) -> bool:
        return self.isolation == "run"


NO_OPTIONS = ModuleOptions()


def check_section(value: Any, lines: dict[str, int]) -> tuple[ModuleOptions, list[Problem]]:
    """The module's ``deployer:`` section; ``lines``: line of each dotted key below it."""
    if value is None:
        return NO_OPTIONS, []
    if not isinstance(value, dict):
        return NO_OPTIONS, [Problem(PREFECT_YAML, lines.get("deployer"), "'deployer' must be "
                                         "a mapping (agent: {cpu: ..., memory: ...})")]
    problems = [Problem(PREFECT_YAML, lines.get(f"deployer.{key}"), f"unknown key {key!r} in "
                        f"'deployer' (known: {', '.join(SECTION_KEYS)})")
                for key in value if key not in SECTION_KEYS]
    isolation = value.get("isolation", "agent")
    if isolation not in ISOLATIONS:
        problems.append(Problem(PREFECT_YAML, lines.get("deployer.isolation"), "deployer.isolation "
                                f"must be one of {', '.join(ISOLATIONS)}; it is {isolation!r} "
                                "(agent: the module's runs share its always-on agent; run: each "
                                "run in a container of its own)"))
        isolation = "agent"
    agent, options = value.get("agent"), ModuleOptions(isolation=isolation)
    if agent is not None and isolation == "run":
        return options, [*problems, Problem(
            PREFECT_YAML, lines.get("deployer.agent"), "deployer.agent has no meaning with "
            "isolation: run (there is no agent: each run's container has its deployment's "
            "work_pool.job_variables cpu and memory); remove it, or size the deployments")]
    if agent is None:
        return options, problems
    if not isinstance(agent, dict):
        return NO_OPTIONS, [*problems, Problem(PREFECT_YAML, lines.get("deployer.agent"),
                                                    "deployer.agent must be a mapping "
                                                    "(cpu: 1, memory: 1.5)")]

    def problem(key: str, message: str) -> None:
        problems.append(Problem(PREFECT_YAML, lines.get(f"deployer.agent.{key}",
                                                        lines.get("deployer.agent")), message))

    before = len(problems)
    for key in agent:  # a key in another case is named by _size
        if key not in AGENT_KEYS and not (isinstance(key, str) and key.lower() in AGENT_KEYS):
            problem(key, f"unknown key {key!r} in deployer.agent (known: {', '.join(AGENT_KEYS)})")
    found = _size(agent, "deployer.agent", problem)
    if found is None:
        return NO_OPTIONS, problems
    cpu, memory = found
    if cpu is None or memory is None:
        if len(problems) == before:  # a misnamed key said it already
            missing = "cpu" if cpu is None else "memory"
            problem(missing, f"deployer.agent needs both cpu and memory (no {missing})")
        return NO_OPTIONS, problems
    floor = MIN_MEMORY_GB + AGENT_OVERHEAD_GB
    if memory < floor:
        problem("memory", f"deployer.agent.memory must be at least {_number(floor)} GB: "
                f"{_number(AGENT_OVERHEAD_GB)} GB for its worker, and a run needs "
                f"{_number(MIN_MEMORY_GB)} GB; it is {_number(memory)}")
        return NO_OPTIONS, problems
    return ModuleOptions(Size(cpu, memory), isolation), problems


def check_deployment(spec: DeploymentSpec, options: ModuleOptions) -> list[Problem]:
    """A deployment's ``job_variables`` ``cpu`` and ``memory``: within ACI's limits, and within
    the module's declared agent size (its runs share that agent)."""
    variables = _job_variables(spec)
    where = f"deployment {spec.name!r}"
    problems: list[Problem] = []

    def problem(key: str, message: str) -> None:
        problems.append(Problem(PREFECT_YAML, spec.line_of(f"work_pool.job_variables.{key}"),
                                f"{where}: {message}"))

    found = _size(variables, "work_pool.job_variables", problem)
    if found is None:
        return problems
    cpu, memory = found
    agent = options.agent
    largest = round(ACI_MAX_MEMORY_GB - AGENT_OVERHEAD_GB, 1)
    if agent is None and not options.per_run and memory is not None and memory > largest:
        problem("memory", f"asks for {_number(memory)} GB: its agent needs "
                f"{_number(AGENT_OVERHEAD_GB)} GB beside it, and {ACI_SOURCE} is "
                f"{_number(ACI_MAX_MEMORY_GB)} GB, so at most {_number(largest)} GB")
    if agent is not None:
        if cpu is not None and cpu > agent.cpu:
            problem("cpu", f"asks for {_number(cpu)} vCPU, more than the module's agent has "
                    f"(deployer.agent.cpu: {_number(agent.cpu)}): its runs share that agent; "
                    "raise deployer.agent.cpu or lower this")
        room = round(agent.memory_gb - AGENT_OVERHEAD_GB, 1)
        if memory is not None and memory > room:
            problem("memory", f"asks for {_number(memory)} GB, more than the module's agent has "
                    f"room for ({_number(room)} GB: deployer.agent.memory {_number(agent.memory_gb)} "
                    f"less {_number(AGENT_OVERHEAD_GB)} GB for its worker): its runs share that "
                    "agent; raise deployer.agent.memory or lower this")
    return problems


def agent_size(options: ModuleOptions, deployments: Iterable[DeploymentSpec],
               default: Size) -> Size:
    """The size of the module's agent: the declared one, or the installation's default raised
    to fit the biggest deployment."""
    if options.agent is not None:
        return options.agent
    cpu, memory = default.cpu, default.memory_gb
    for spec in deployments:
        asked = run_size(spec)
        cpu = max(cpu, asked[0] or 0.0)
        if asked[1] is not None:
            memory = max(memory, round(asked[1] + AGENT_OVERHEAD_GB, 1))
    return Size(cpu, memory)


def digest_pairs(options: ModuleOptions,
                 deployments: Iterable[DeploymentSpec]) -> list[tuple[str, str]]:
    """What of the sizes goes into the config digest: the declared agent size and the biggest
    run size (a NUL in the names keeps them apart from any ``.env`` key); nothing when none is
    given."""
    pairs = [("\0isolation", options.isolation)] if options.per_run else []
    if options.agent is not None:
        pairs.append(("\0agent", options.agent.describe()))
    asked = [run_size(spec) for spec in deployments]
    cpus = [cpu for cpu, _ in asked if cpu is not None]
    memories = [memory for _, memory in asked if memory is not None]
    if cpus or memories:
        biggest = (_number(max(cpus, default=0)), _number(max(memories, default=0)))
        pairs.append(("\0runs", " ".join(biggest)))
    return pairs


def container_size(spec: DeploymentSpec, default: Size) -> Size:
    """The container a run of ``spec`` gets with ``isolation: run``: its deployment's size,
    the installation's default size for what it does not say."""
    return size_of(_job_variables(spec), default)


def size_of(variables: dict[str, Any], default: Size) -> Size:
    """The ``cpu`` and ``memory`` job variables say (a run's, as Prefect merged them), the
    default for what they do not."""
    cpu, memory = _float(variables.get("cpu")), _float(variables.get("memory"))
    return Size(cpu if cpu is not None else default.cpu,
                memory if memory is not None else default.memory_gb)


def run_size(spec: DeploymentSpec) -> tuple[float | None, float | None]:
    """(cpu, memory GB) a deployment asks for its runs; None: not said."""
    variables = _job_variables(spec)
    return _float(variables.get("cpu")), _float(variables.get("memory"))


def job_variables(spec: DeploymentSpec) -> dict[str, Any]:
    """The job variables registered with the deployment: its own, and its memory limit in the
    runs' environment for the agent to keep (``run_limits``)."""
    variables = dict(_job_variables(spec))
    memory = run_size(spec)[1]
    if memory is not None:
        variables["env"] = {**dict(variables.get("env") or {}),
                            RUN_MEMORY_ENV: str(int(memory * 1024**3))}
    return variables


def _job_variables(spec: DeploymentSpec) -> dict[str, Any]:
    pool = spec.config.get("work_pool")
    variables = pool.get("job_variables") if isinstance(pool, dict) else None
    return variables if isinstance(variables, dict) else {}


def _size(values: dict[str, Any], path: str,
          problem: Any) -> tuple[float | None, float | None] | None:
    """(cpu, memory) from ``values``, each None when absent; None when either is wrong. A key
    in another case (``Memory``) is named: Prefect would take it for another variable."""
    ok = True
    for key in values:
        if isinstance(key, str) and key.lower() in SIZE_KEYS and key not in SIZE_KEYS:
            problem(key, f"{path}.{key}: did you mean {key.lower()!r}? (names are case-sensitive)")
            ok = False
    cpu, memory = values.get("cpu"), values.get("memory")
    if cpu is not None and (_float(cpu) is None or not 0 < cpu <= ACI_MAX_CPU):
        problem("cpu", f"{path}.cpu must be a number of vCPU above 0 and at most "
                f"{_number(ACI_MAX_CPU)}; it is {_shown(cpu)}. {_number(ACI_MAX_CPU)} vCPU is "
                f"{ACI_SOURCE}")
        ok = False
    if memory is not None and (_float(memory) is None or not MIN_MEMORY_GB <= memory <= ACI_MAX_MEMORY_GB
                               or round(memory, 1) != memory):
        problem("memory", f"{path}.memory must be a number of GB from {_number(MIN_MEMORY_GB)} to "
                f"{_number(ACI_MAX_MEMORY_GB)}, in steps of 0.1; it is {_shown(memory)}. "
                f"{_number(ACI_MAX_MEMORY_GB)} GB and the steps are {ACI_SOURCE}; a flow run alone "
                "needs about 0.2 GB")
        ok = False
    return (_float(cpu), _float(memory)) if ok else None


def _shown(value: Any) -> str:
    return f"the text {value!r} (write a number)" if isinstance(value, str) else repr(value)


def _float(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return None
    return float(value)


def _number(value: float) -> str:
    return f"{value:.10g}"
