"""A module's prefect.yaml deployment, as the Prefect API's create-deployment payload.

The deployer sets what it owns: the work pool (one per module), the work queue (the serving
agent's), the pull step (the revision's working directory), the version (the revision id) and a
``deployer`` tag; the rest (description, parameters, schedules, tags, paused, concurrency, job
variables) comes from prefect.yaml. Schedules are built as the client's models first, so one it
rejects fails before anything is re-pointed.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from prefect.client.schemas.actions import DeploymentScheduleCreate
from prefect.client.schemas.schedules import CronSchedule, IntervalSchedule, RRuleSchedule

from deployer.bundle.prefect_yaml import DeploymentSpec

#: the tag every deployment the deployer registers carries
MANAGED_TAG = "deployer"


def deployment_payload(spec: DeploymentSpec, pool: str, queue: str, working_dir: str,
             revision_id: str) -> dict[str, Any]:
    config = spec.config
    work_pool = config.get("work_pool")
    work_pool = work_pool if isinstance(work_pool, dict) else {}
    tags = [str(t) for t in config.get("tags") or []]
    return {
        "name": spec.name,
        "version": revision_id,
        "description": config.get("description"),
        "entrypoint": spec.entrypoint,
        "work_pool_name": pool,
        "work_queue_name": queue,
        "pull_steps": [{"prefect.deployments.steps.set_working_directory":
                        {"directory": working_dir}}],
        "parameters": dict(config.get("parameters") or {}),
        "parameter_openapi_schema": spec.parameter_schema or None,
        "enforce_parameter_schema": bool(config.get("enforce_parameter_schema", False)),
        "schedules": [_schedule(s) for s in _schedules(config)],
        "tags": sorted({*tags, MANAGED_TAG}),
        "paused": config.get("paused"),
        "concurrency_limit": config.get("concurrency_limit"),
        "job_variables": dict(work_pool.get("job_variables") or {}),
    }


def _schedules(config: dict[str, Any]) -> list[dict[str, Any]]:
    items = config.get("schedules")
    if items is None and config.get("schedule"):
        items = [config["schedule"]]
    return [s for s in items or [] if isinstance(s, dict)]


def _schedule(item: dict[str, Any]) -> DeploymentScheduleCreate:
    timezone = item.get("timezone")
    schedule: Any
    if "cron" in item:
        schedule = CronSchedule(cron=item["cron"], timezone=timezone, day_or=item.get("day_or", True))
    elif "interval" in item:
        schedule = IntervalSchedule(interval=timedelta(seconds=float(item["interval"])),
                                    anchor_date=item.get("anchor_date"), timezone=timezone)
    else:
        schedule = RRuleSchedule(rrule=item["rrule"], timezone=timezone)
    return DeploymentScheduleCreate(schedule=schedule, active=item.get("active", True),
                                    parameters=dict(item.get("parameters") or {}),
                                    slug=item.get("slug"))
