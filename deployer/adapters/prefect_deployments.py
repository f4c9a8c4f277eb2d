"""A module's prefect.yaml deployment, as the Prefect API's create-deployment payload.

The deployer sets what it owns: the work pool (one per module), the work queue (the serving
agent's), the pull steps (the revision's code: from the code store, or the image's working
directory), the version (the revision id) and a ``deployer`` tag; the rest (description,
parameters, schedules, tags, paused, concurrency, job variables) comes from prefect.yaml.
Schedules are built as the client's models first, so one it rejects fails before anything is
re-pointed.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from prefect.client.schemas.actions import DeploymentScheduleCreate
from prefect.client.schemas.schedules import CronSchedule, IntervalSchedule, RRuleSchedule

from deployer.bundle import sizing
from deployer.bundle.deployment_config import schedule_items
from deployer.bundle.prefect_yaml import PREFECT_YAML, DeploymentSpec
from deployer.errors import Problem

#: the tag every deployment the deployer registers carries
MANAGED_TAG = "deployer"


def deployment_payload(spec: DeploymentSpec, pool: str, queue: str,
                       pull_steps: Sequence[dict[str, Any]], revision_id: str,
                       image: str = "") -> dict[str, Any]:
    config = spec.config
    work_pool = config.get("work_pool")
    work_pool = work_pool if isinstance(work_pool, dict) else {}
    tags = [str(t) for t in config.get("tags") or []]
    return {
        "name": spec.name,
        "version": revision_id,
        # none given is empty: Prefect's client would register None as the text "None"
        "description": "" if config.get("description") is None else str(config["description"]),
        "entrypoint": spec.entrypoint,
        "work_pool_name": pool,
        "work_queue_name": queue,
        "pull_steps": [dict(step) for step in pull_steps],
        "parameters": dict(config.get("parameters") or {}),
        "parameter_openapi_schema": spec.openapi_schema,
        # true unless prefect.yaml says otherwise, as `prefect deploy` does
        "enforce_parameter_schema": config.get("enforce_parameter_schema") is not False,
        "schedules": [_schedule(item) for _, item in schedule_items(config) if isinstance(item, dict)],
        "tags": sorted({*tags, MANAGED_TAG}),
        "paused": config.get("paused"),
        "concurrency_limit": config.get("concurrency_limit"),
        # with its runs' memory limit in their environment, when it has one (``run_limits``),
        # and the image each run's container starts from (``isolation: run``)
        "job_variables": {**sizing.job_variables(spec), **({"image": image} if image else {})},
    }


def _schedule(item: dict[str, Any]) -> DeploymentScheduleCreate:
    # what prefect.yaml leaves out is left to the model's own defaults (an interval schedule
    # refuses an explicit null anchor date)
    extra = {k: item[k] for k in ("timezone",) if item.get(k) is not None}
    schedule: Any
    if item.get("cron") is not None:
        schedule = CronSchedule(cron=item["cron"], day_or=item.get("day_or", True), **extra)
    elif item.get("interval") is not None:
        if item.get("anchor_date") is not None:
            extra["anchor_date"] = item["anchor_date"]
        schedule = IntervalSchedule(interval=timedelta(seconds=float(item["interval"])), **extra)
    else:
        schedule = RRuleSchedule(rrule=item["rrule"], **extra)
    return DeploymentScheduleCreate(schedule=schedule, active=item.get("active", True),
                                    parameters=dict(item.get("parameters") or {}),
                                    slug=item.get("slug"))


class PrefectDeploymentChecker:
    """``ports.DeploymentChecker`` with Prefect's own schedule models: a schedule Prefect's
    client would refuse (a cron, rrule or time zone it does not know) and one that never
    produces a run (a cron for February 30th) are problems, with the schedule's line."""

    #: a schedule must produce a run within this long from now to be one that ever runs
    HORIZON = timedelta(days=5 * 366)

    def check(self, module: str, deployments: Sequence[DeploymentSpec]) -> list[Problem]:
        problems = []
        for spec in deployments:
            for what, name, line in (("deployment", spec.name, spec.line_of("name")),
                                     ("flow", spec.flow_name, spec.line_of("entrypoint"))):
                refused = name_refusal(name) if name or what == "deployment" else ""
                if refused:
                    named = f"(the @flow name in {spec.flow_path})" if what == "flow" else ""
                    problems.append(Problem(PREFECT_YAML, line, f"{what} name {name!r} {named}"
                                            .replace("  ", " ") + f": {refused}"))
            for index, (path, item) in enumerate(schedule_items(spec.config)):
                kinds = [k for k in ("cron", "interval", "rrule") if isinstance(item, dict)
                         and item.get(k) is not None]
                if len(kinds) != 1:
                    continue  # the shape is deployment_config's to report
                message = _refusal(item)
                if message:
                    problems.append(Problem(PREFECT_YAML, spec.line_of(path),
                                            f"deployment {spec.name!r}: schedule {index + 1}: {message}"))
        return problems


def name_refusal(name: str) -> str:
    """Why Prefect refuses a flow or deployment name (its own type: not empty, none of / % & < >),
    or ""."""
    from prefect.types import NonEmptyishName
    from pydantic import TypeAdapter, ValidationError

    try:
        TypeAdapter(NonEmptyishName).validate_python(name)
    except ValidationError:
        return ("Prefect refuses it: a name must not be empty nor hold any of "
                "/ % & < > (they would break its URLs)")
    return ""


def _refusal(item: dict[str, Any]) -> str:
    try:
        created = _schedule(item)
    except (ValueError, TypeError) as exc:
        return _clean(exc)
    if "cron" in item or "rrule" in item:
        return _never_runs(created.schedule)
    return ""


def _never_runs(schedule: Any) -> str:
    """Whether the schedule produces a run within the horizon, computed as Prefect's scheduler
    does (its vendored croniter for cron, the model's own rrule) with only prefect-client's parts:
    the function app ships the client, not the server."""
    now = _now()
    end = now + PrefectDeploymentChecker.HORIZON
    try:
        if isinstance(schedule, CronSchedule):
            from zoneinfo import ZoneInfo

            # Prefect's scheduler's own croniter (vendored, unannotated): the prefect-client the
            # app ships has no other
            from prefect._vendor.croniter import croniter  # type: ignore[attr-defined]

            start = now.astimezone(ZoneInfo(schedule.timezone or "UTC")).replace(tzinfo=None)
            cron = croniter(schedule.cron, start, day_or=schedule.day_or)  # type: ignore[no-untyped-call]
            following = cron.get_next(datetime)  # type: ignore[no-untyped-call]
            found = following is not None and following <= end.replace(tzinfo=None)
        else:
            rule = schedule.to_rrule()
            tz = _rrule_tz(rule)  # a rule with a zone compares aware times, one without naive

            def local(moment: datetime) -> datetime:
                return moment.astimezone(tz) if tz else moment.astimezone(UTC).replace(tzinfo=None)

            following = rule.after(local(now))
            found = following is not None and following <= local(end)
    except Exception as exc:  # croniter's "failed to find next date" and its kin
        return f"never produces a run ({_clean(exc)})"
    return "" if found else "produces no run in the next five years"


def _rrule_tz(rule: Any) -> Any:
    start = getattr(rule, "_dtstart", None)
    if start is None:  # a rule set: its first rule's start
        rules = getattr(rule, "_rrule", None) or [None]
        start = getattr(rules[0], "_dtstart", None)
    return start.tzinfo if start is not None else None


def _now() -> Any:
    from prefect.types._datetime import now

    return now("UTC")


def _clean(exc: BaseException) -> str:
    errors = getattr(exc, "errors", None)
    if callable(errors):
        try:
            first = errors()[0]
            return str(first.get("msg", exc)).removeprefix("Value error, ")
        except (IndexError, TypeError, AttributeError):
            pass
    return (str(exc) or type(exc).__name__).splitlines()[0]
