"""What the deployer tells people: a deploy's outcome, a cleanup that did something, an
unauthorised webhook storm. Pure: a ``Notice`` is built here from records the deployer already
keeps (never from ``.env`` values or keys, which no record holds); a ``Notifier`` sends it
(``adapters/apprise_notifier.py``). Sending never fails or slows the caller beyond a bound:
``send`` returns what happened, for the caller to record.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

from deployer.models import RunRecord, RunStatus
from deployer.ports.notifications import Notice

if TYPE_CHECKING:
    from deployer.services import Services


def tell(services: Services, notice: Notice | None) -> dict[str, Any] | None:
    """Send a notice (bounded in time, never raising); what became of it, to record, or None
    when nothing was sent anywhere."""
    if notice is None:
        return None
    sent = services.notifier.send(notice)
    if sent is None:
        return None
    return {"kind": notice.kind, "at": services.now().isoformat(), **sent.to_dict()}


def links(services: Services) -> Links:
    return Links(services.settings.prefect_api_url, services.settings.public_url)


_OUTCOMES = {
    RunStatus.SUCCEEDED: ("deploy.succeeded", "success", "deployed"),
    RunStatus.FAILED: ("deploy.failed", "failure", "deploy failed"),
    RunStatus.ROLLED_BACK: ("deploy.rolled_back", "warning", "rolled back"),
    RunStatus.REJECTED: ("deploy.rejected", "failure", "rejected"),
    RunStatus.SUPERSEDED: ("request.superseded", "info", "superseded"),
}


def outcome_notice(record: RunRecord, outcome: RunStatus, error: dict[str, Any] | None,
                   now: datetime, links: Links) -> Notice | None:
    """The notice of a request's outcome; None for outcomes nobody is told about (no-ops)."""
    if outcome not in _OUTCOMES:
        return None
    kind, level, verb = _OUTCOMES[outcome]
    revision = record.revision.id if record.revision else "(no revision)"
    what = "rollback" if record.kind.value == "rollback" else record.kind.value
    title = f"{record.module}: {verb} ({revision})"
    lines = [f"module {record.module}, revision {revision}, {what} request {record.request_id}",
             f"trigger: {trigger_text(record)}",
             f"took {_span((now - record.created_at).total_seconds())}"]
    if outcome is RunStatus.SUPERSEDED and record.superseded_by:
        lines.append(f"superseded by the newer request {record.superseded_by}")
    if error:
        lines.append(f"why: {str(error.get('message', ''))[:600]}")
        for problem in list(error.get("problems") or [])[:5]:
            if isinstance(problem, dict):
                where = ":".join(str(p) for p in (problem.get("file"), problem.get("line")) if p)
                lines.append(f"  - {where + ': ' if where else ''}{problem.get('message', '')}")
        if error.get("hint"):
            lines.append(f"hint: {error['hint']}")
    lines += links.lines(record.module)
    return Notice(kind, level, title, "\n".join(lines), record.module)


#: a request that has waited this long for one thing (its module, a build, an agent) is told of
#: once; drains and bake windows wait by design and never count
STUCK_AFTER_SECONDS = 30 * 60


def stuck_notice(record: RunRecord, what: str, since: datetime, now: datetime,
                 links: Links) -> Notice | None:
    """Once per thing waited for: the first look past ``STUCK_AFTER_SECONDS``."""
    waited = (now - since).total_seconds()
    if waited < STUCK_AFTER_SECONDS or any(n.get("kind") == "request.stuck" and n.get("since") ==
                                           since.isoformat() for n in record.notices):
        return None
    revision = record.revision.id if record.revision else "(no revision)"
    lines = [f"module {record.module}, revision {revision}, request {record.request_id}",
             f"trigger: {trigger_text(record)}", f"waiting {_span(waited)} for: {what}",
             f"`deployer logs {record.module} --request {record.request_id}` shows its stages",
             *links.lines(record.module)]
    return Notice("request.stuck", "warning", f"{record.module}: request waiting {_span(waited)}",
                  "\n".join(lines), record.module)


def cleanup_notice(report: Any, links: Links) -> Notice | None:
    """A cleanup is worth telling about when it deleted, deferred, failed or found an anomaly."""
    counts = {k: report.count(k) for k in ("deleted", "deferred", "failed", "anomaly")}
    if not any(counts.values()):
        return None
    level = "failure" if counts["failed"] or counts["anomaly"] else "info"
    summary = ", ".join(f"{n} {k}" for k, n in counts.items() if n)
    lines = [f"cleanup {report.report_id}: {summary}"]
    for item in report.items:
        if item.outcome in ("failed", "anomaly", "deferred"):
            lines.append(f"  - {item.outcome} {item.kind} {item.target}: {item.error or item.reason}"[:300])
    lines += links.lines("")
    return Notice("cleanup", level, f"cleanup: {summary}", "\n".join(lines[:25]), key="cleanup")


def unauthorised_notice(source: str, path: str) -> Notice:
    return Notice("webhook.unauthorised", "warning", "unauthorised webhook calls",
                  f"calls to {path} without the right token (from {source or 'an unknown address'}); "
                  "repeated calls are counted, not each reported", key=f"unauthorised:{path}")


def trigger_text(record: RunRecord) -> str:
    trigger, detail = record.trigger, record.trigger.detail
    if trigger.source == "blob":
        return f"upload of {detail.get('blob', trigger.ref)}"
    if trigger.source == "webhook":
        return f"registry push of {detail.get('repository', '?')}:{detail.get('tag', '?')}"
    if trigger.source == "cli":
        who = detail.get("user")
        return f"deployer CLI: {trigger.ref}" + (f" by {who}" if who else "")
    return f"{trigger.source}: {trigger.ref}"


@dataclass(frozen=True)
class Links:
    """Where to look: the Prefect UI (from PREFECT_API_URL) and the deployer's status page
    (from DEPLOYER_PUBLIC_URL, when set)."""

    prefect_api_url: str
    public_url: str = ""

    def lines(self, module: str) -> list[str]:
        out = [f"Prefect UI: {prefect_ui(self.prefect_api_url)}/runs"]
        if self.public_url:
            query = f"?module={module}" if module else ""
            out.append(f"status: {public_link(self.public_url)}/api/status{query}")
        return out


def prefect_ui(api_url: str) -> str:
    """The UI that goes with an API URL: Prefect Cloud's app for a Cloud workspace, else the
    server's own UI (the API URL without ``/api``), with no credential the URL may carry."""
    url = urlsplit(api_url)
    parts = [p for p in url.path.split("/") if p]
    if url.hostname == "api.prefect.cloud" and len(parts) >= 5 and parts[1] == "accounts":
        return f"https://app.prefect.cloud/account/{parts[2]}/workspace/{parts[4]}"
    base = public_link(api_url).rstrip("/")
    return base[: -len("/api")] if base.endswith("/api") else base


def public_link(url: str) -> str:
    """A URL setting as it may be shown: no userinfo, no query (a link, never a credential)."""
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc.rsplit("@", 1)[-1], parts.path.rstrip("/"), "", ""))


def _span(seconds: float) -> str:
    seconds = max(int(seconds), 0)
    if seconds < 120:
        return f"{seconds} s"
    if seconds < 7200:
        return f"{seconds // 60} min {seconds % 60} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60} min"


def tell_awaiting(services: Services, record: RunRecord) -> None:
    """A request waits for an approval: say so, with the commands that decide."""
    env = services.settings.environment
    flag = f"--env {env} " if env else ""
    who = record.approval.requested_by if record.approval else ""
    other = " (by someone other than the requester)" if services.settings.approval == "required-other" else ""
    revision = record.revision.id if record.revision else "-"
    tell(services, Notice(
        "request.awaiting_approval", "warning",
        f"{record.module}: {record.kind.value} into {services.settings.environment_name} awaits approval",
        f"request {record.request_id} ({record.kind.value} of revision {revision}"
        f"{', asked by ' + who if who else ''}) waits for an approval{other}:\n"
        f"  deployer {flag}approve {record.request_id[:8]} --comment '...'\n"
        f"  deployer {flag}reject {record.request_id[:8]} --reason '...'\n"
        + "\n".join(links(services).lines(record.module)), record.module))
