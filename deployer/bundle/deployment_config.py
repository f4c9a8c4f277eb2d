"""The rest of a prefect.yaml deployment, checked in full at validate time, without network.

What the deployer honours is checked for the shapes Prefect accepts (``tags``, ``description``,
``paused``, ``concurrency_limit``, ``parameters``, ``enforce_parameter_schema``, ``schedules``,
``work_pool.job_variables``); what it sets itself or does not honour is reported instead of
silently ignored (``build``, ``push``, ``pull``, ``triggers``, ``sla``, ``version``, a
``work_pool`` or queue of the module's own). Parameters are checked against the flow's
signature as the code's syntax tree shows it, the way ``enforce_parameter_schema`` (true by
default, as in ``prefect deploy``) will at run time. Whether a cron, interval, rrule or time zone
is one Prefect accepts is asked of Prefect's own schedule models, through a
``ports.DeploymentChecker``; this module stays free of Prefect.

The deployer's own section, ``deployer:``, which ``prefect deploy`` ignores, asks for a smoke
run of the deployment before cutover::

    deployer:
      smoke:
        parameters: {as_of: "2026-01-05"}
        timeout_seconds: 300
"""

from __future__ import annotations

from typing import Any

from deployer.bundle.prefect_yaml import PREFECT_YAML, DeploymentSpec
from deployer.errors import Problem

#: keys of a deployment and what the deployer makes of them
HONOURED = {"name", "entrypoint", "description", "tags", "parameters", "enforce_parameter_schema",
            "schedule", "schedules", "paused", "concurrency_limit", "work_pool", "deployer"}
NOT_HONOURED = {
    "build": "the deployer builds the module's image itself (from its Dockerfile)",
    "push": "the deployer pushes the image itself",
    "pull": "the deployer sets each deployment's pull steps (the revision's working directory)",
    "triggers": "automations are not managed by the deployer; create them in Prefect",
    "sla": "SLAs are not managed by the deployer; create them in Prefect",
    "version": "the deployer sets each deployment's version to the revision id",
    "version_type": "the deployer sets each deployment's version to the revision id",
    "flow_name": "the flow's name comes from the entrypoint's @flow",
}
TOP_NOT_HONOURED = {k: NOT_HONOURED[k] for k in ("build", "push", "pull")}
#: ``definitions`` is where Prefect's own prefect.yaml keeps YAML anchors (it ignores the key)
TOP_KNOWN = {"name", "prefect-version", "deployments", "deployer", "definitions", *TOP_NOT_HONOURED}
SCHEDULE_KEYS = {"cron", "interval", "rrule", "timezone", "anchor_date", "active", "parameters",
                 "slug", "replaces", "day_or"}
COLLISION_STRATEGIES = ("ENQUEUE", "CANCEL_NEW")
_JSON_TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,), "integer": (int,), "number": (int, float), "boolean": (bool,),
    "object": (dict,), "array": (list,)}


def check_top_level(data: dict[str, Any], line_of: dict[str, int]) -> list[Problem]:
    problems = []
    for key in data:
        if key in TOP_NOT_HONOURED:
            problems.append(Problem(PREFECT_YAML, line_of.get(key), f"'{key}' is not honoured: "
                                    f"{TOP_NOT_HONOURED[key]}; remove it"))
        elif key not in TOP_KNOWN:
            problems.append(Problem(PREFECT_YAML, line_of.get(key), f"unknown key {key!r} "
                                    "(Prefect would ignore it)"))
    return problems


def check_deployment(spec: DeploymentSpec, module: str) -> list[Problem]:
    config, where = spec.config, f"deployment {spec.name!r}"
    problems: list[Problem] = []

    def problem(path: str, message: str) -> None:
        problems.append(Problem(PREFECT_YAML, spec.line_of(path), f"{where}: {message}"))

    for key in config:
        if key in NOT_HONOURED:
            problem(key, f"'{key}' is not honoured: {NOT_HONOURED[key]}; remove it")
        elif key not in HONOURED:
            problem(key, f"unknown key {key!r} (Prefect would ignore it)")
    if "description" in config and not isinstance(config["description"], str | None):
        problem("description", "description must be text")
    tags = config.get("tags")
    if tags is not None and not (isinstance(tags, list) and all(isinstance(t, str) for t in tags)):
        problem("tags", "tags must be a list of strings")
    for flag in ("paused", "enforce_parameter_schema"):
        if flag in config and not isinstance(config[flag], bool | None):
            problem(flag, f"{flag} must be true or false")
    problems += _concurrency(config.get("concurrency_limit"), problem)
    problems += _work_pool(config.get("work_pool"), module, problem)
    enforce = config.get("enforce_parameter_schema")
    enforce = True if enforce is None else bool(enforce)
    parameters = config.get("parameters")
    if parameters is not None and not isinstance(parameters, dict):
        problem("parameters", "parameters must be a mapping of name: value")
        parameters = {}
    problems += _parameters(spec, parameters or {}, "parameters", enforce, required=True)
    for index, item in enumerate(schedule_items(config)):
        problems += _schedule(spec, index, item, enforce)
    if "schedules" in config and not isinstance(config["schedules"], list | None):
        problem("schedules", "schedules must be a list")
    problems += _deployer_section(spec, config.get("deployer"), enforce)
    return problems


def schedule_items(config: dict[str, Any]) -> list[tuple[str, Any]]:
    """(key path, item) of every schedule, ``schedule:`` (one) or ``schedules:`` (a list)."""
    items = config.get("schedules")
    if isinstance(items, list):
        return [(f"schedules.{n}", item) for n, item in enumerate(items)]
    if config.get("schedule") is not None:
        return [("schedule", config["schedule"])]
    return []


def _schedule(spec: DeploymentSpec, index: int, entry: tuple[str, Any], enforce: bool) -> list[Problem]:
    path, item = entry
    where = f"deployment {spec.name!r}: schedule {index + 1}"
    if not isinstance(item, dict):
        return [Problem(PREFECT_YAML, spec.line_of(path), f"{where} must be a mapping with one "
                        "of cron, interval or rrule")]
    problems = []
    kinds = [k for k in ("cron", "interval", "rrule") if item.get(k) is not None]
    if len(kinds) != 1:
        problems.append(Problem(PREFECT_YAML, spec.line_of(path), f"{where} needs exactly one of "
                                f"cron, interval or rrule (has {', '.join(kinds) or 'none'})"))
    for key in item:
        if key not in SCHEDULE_KEYS:
            problems.append(Problem(PREFECT_YAML, spec.line_of(f"{path}.{key}"),
                                    f"{where}: unknown key {key!r}"))
    interval = item.get("interval")
    if interval is not None and (isinstance(interval, bool) or not isinstance(interval, int | float)
                                 or interval <= 0):
        problems.append(Problem(PREFECT_YAML, spec.line_of(f"{path}.interval"),
                                f"{where}: interval must be a positive number of seconds"))
    parameters = item.get("parameters")
    if parameters is not None:
        if isinstance(parameters, dict):
            problems += _parameters(spec, parameters, f"{path}.parameters", enforce, required=False)
        else:
            problems.append(Problem(PREFECT_YAML, spec.line_of(f"{path}.parameters"),
                                    f"{where}: parameters must be a mapping"))
    return problems


def _parameters(spec: DeploymentSpec, values: dict[str, Any], path: str, enforce: bool, *,
                required: bool) -> list[Problem]:
    """Values against the flow's signature: unknown names always; with the schema enforced,
    values of the wrong simple type and (for the deployment's own) required ones left out."""
    schema = spec.parameter_schema
    if not schema:
        return []
    properties: dict[str, Any] = schema.get("properties", {})
    where = f"deployment {spec.name!r}"
    problems = []
    flow = spec.flow_function
    for name, value in values.items():
        line = spec.line_of(f"{path}.{name}")
        if name not in properties:
            if not spec.accepts_kwargs:
                known = ", ".join(properties) or "none"
                problems.append(Problem(PREFECT_YAML, line, f"{where}: parameter {name!r} is not "
                                        f"one of {flow}()'s parameters ({known})"))
            continue
        expected = properties[name].get("type")
        if enforce and expected in _JSON_TYPES and value is not None and not _is(value, expected):
            problems.append(Problem(PREFECT_YAML, line, f"{where}: parameter {name!r} must be "
                                    f"{expected} ({flow}() declares it so; "
                                    "enforce_parameter_schema is on)"))
    if required and enforce:
        missing = [n for n in schema.get("required", []) if n not in values]
        if missing:
            problems.append(Problem(PREFECT_YAML, spec.line_of(path), f"{where}: {flow}() needs "
                                    f"parameter(s) {', '.join(missing)}, which have no default: give "
                                    "them under 'parameters'"))
    return problems


def _is(value: Any, expected: str) -> bool:
    if isinstance(value, bool) and expected != "boolean":
        return False
    return isinstance(value, _JSON_TYPES[expected])


def _concurrency(value: Any, problem: Any) -> list[Problem]:
    if value is None:
        return []
    if isinstance(value, bool) or not isinstance(value, int | dict):
        problem("concurrency_limit", "concurrency_limit must be a positive integer or a mapping "
                "with 'limit'")
        return []
    if isinstance(value, int):
        if value < 1:
            problem("concurrency_limit", "concurrency_limit must be at least 1")
        return []
    limit = value.get("limit")
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
        problem("concurrency_limit.limit", "concurrency_limit.limit must be a positive integer")
    strategy = value.get("collision_strategy")
    if strategy is not None and strategy not in COLLISION_STRATEGIES:
        problem("concurrency_limit.collision_strategy", "collision_strategy must be one of "
                + ", ".join(COLLISION_STRATEGIES))
    grace = value.get("grace_period_seconds")
    if grace is not None and (isinstance(grace, bool) or not isinstance(grace, int)
                              or not 60 <= grace <= 86400):
        problem("concurrency_limit.grace_period_seconds",
                "grace_period_seconds must be a whole number from 60 to 86400")
    for key in value:
        if key not in ("limit", "collision_strategy", "grace_period_seconds"):
            problem(f"concurrency_limit.{key}", f"unknown key {key!r} in concurrency_limit")
    return []


def _work_pool(value: Any, module: str, problem: Any) -> list[Problem]:
    if value is None:
        return []
    if not isinstance(value, dict):
        problem("work_pool", "work_pool must be a mapping (only job_variables is honoured)")
        return []
    for key in value:
        if key in ("name", "work_queue_name"):
            problem(f"work_pool.{key}", f"work_pool.{key} is not honoured: the deployer gives "
                    f"module {module} its own pool ({module!r}) and each agent its own queue; "
                    "remove it")
        elif key != "job_variables":
            problem(f"work_pool.{key}", f"unknown key {key!r} in work_pool")
    variables = value.get("job_variables")
    if variables is not None and not isinstance(variables, dict):
        problem("work_pool.job_variables", "work_pool.job_variables must be a mapping")
    elif variables and variables.get("env") is not None and not isinstance(variables["env"], dict):
        problem("work_pool.job_variables.env", "work_pool.job_variables.env must be a mapping of "
                "NAME: value (the runs' environment)")
    return []


def _deployer_section(spec: DeploymentSpec, value: Any, enforce: bool) -> list[Problem]:
    if value is None:
        return []
    where = f"deployment {spec.name!r}"
    if not isinstance(value, dict):
        return [Problem(PREFECT_YAML, spec.line_of("deployer"), f"{where}: 'deployer' must be "
                        "a mapping (smoke: ...)")]
    problems = []
    for key in value:
        if key == "agent":
            problems.append(Problem(PREFECT_YAML, spec.line_of(f"deployer.{key}"),
                                    f"{where}: 'agent' goes in prefect.yaml's top-level 'deployer:' "
                                    "section (the module's agent); a deployment's runs are sized "
                                    "by work_pool.job_variables cpu and memory"))
        elif key != "smoke":
            problems.append(Problem(PREFECT_YAML, spec.line_of(f"deployer.{key}"),
                                    f"{where}: unknown key {key!r} in 'deployer' (known: smoke)"))
    smoke = value.get("smoke")
    if smoke is None:
        return problems
    if smoke is True:
        smoke = {}
    if not isinstance(smoke, dict):
        return [*problems, Problem(PREFECT_YAML, spec.line_of("deployer.smoke"), f"{where}: "
                                   "deployer.smoke must be true or a mapping (parameters, "
                                   "timeout_seconds)")]
    for key in smoke:
        if key not in ("parameters", "timeout_seconds"):
            problems.append(Problem(PREFECT_YAML, spec.line_of(f"deployer.smoke.{key}"),
                                    f"{where}: unknown key {key!r} in deployer.smoke"))
    timeout = smoke.get("timeout_seconds")
    if timeout is not None and (isinstance(timeout, bool) or not isinstance(timeout, int)
                                or not 1 <= timeout <= 3600):
        problems.append(Problem(PREFECT_YAML, spec.line_of("deployer.smoke.timeout_seconds"),
                                f"{where}: deployer.smoke.timeout_seconds must be 1 to 3600"))
    parameters = smoke.get("parameters")
    if parameters is not None and not isinstance(parameters, dict):
        problems.append(Problem(PREFECT_YAML, spec.line_of("deployer.smoke.parameters"),
                                f"{where}: deployer.smoke.parameters must be a mapping"))
    elif parameters:
        problems += _parameters(spec, parameters, "deployer.smoke.parameters", enforce,
                                required=False)
    return problems


def smoke_of(spec: DeploymentSpec) -> dict[str, Any] | None:
    """The smoke run a deployment asks for: {"parameters": ..., "timeout_seconds": ...}."""
    section = spec.config.get("deployer")
    smoke = section.get("smoke") if isinstance(section, dict) else None
    if smoke is None or smoke is False:
        return None
    smoke = {} if smoke is True else dict(smoke)
    return {"parameters": dict(spec.config.get("parameters") or {}) | dict(smoke.get("parameters") or {}),
            "timeout_seconds": int(smoke.get("timeout_seconds") or 600)}
