"""The dashboard: one HTML page, no front-end build, no script. Rendered from one document,
``dashboard_data``: the status (exactly what ``status --json`` and ``/api/status`` return), each
module's last deploys from its history, and the last cleanup report. ``?format=json`` on the route
returns that document, so the page has no source of truth of its own.
"""

from __future__ import annotations

import html
from typing import Any

from deployer import codec
from deployer.notices import prefect_ui
from deployer.rotation.operations import STAGE_ORDER, in_time_order, stage_kind
from deployer.services import Services

#: deploys shown per module
LAST_DEPLOYS = 8
OUTCOME_CLASS = {"succeeded": "ok", "noop": "ok", "failed": "bad", "rejected": "bad",
                 "rolled_back": "warn", "superseded": "dim"}


def dashboard_data(services: Services, module: str | None = None) -> dict[str, Any]:
    from deployer.pipeline.cleanup import last_report
    from deployer.pipeline.status import module_statuses

    statuses = module_statuses(services, module)
    deploys = {s.module: codec.to_data(services.state.history(s.module)[-LAST_DEPLOYS:])
               for s in statuses}
    report = last_report(services)
    environments = None
    if services.settings.environments:  # every environment at once, as `deployer status`
        from deployer.pipeline.matrix import matrix

        names, rows = matrix(services)
        environments = {"names": names, "modules": codec.to_data(rows)}
    return {"modules": codec.to_data(statuses), "deploys": deploys, "environments": environments,
            "cleanup": codec.to_data(report) if report else None,
            "prefect_ui": prefect_ui(services.settings.prefect_api_url),
            "now": codec.to_data(services.now())}


def render(data: dict[str, Any]) -> str:
    modules = data["modules"]
    ui = data.get("prefect_ui") or ""
    body = [f"<h1>Prefect Collective deployer</h1><p class=sub>{len(modules)} module(s) · "
            f"<a href='{_e(ui)}/runs'>Prefect UI</a> · <a href='?format=json'>this page as JSON</a></p>"]
    if not modules:
        body.append("<p class=empty>No modules yet: <code>deployer deploy flows/&lt;module&gt;</code> "
                    "or upload a bundle deploys one.</p>")
    body.append(_environments(data.get("environments")))
    body.append(_overview(modules))
    rows = {s["module"]: _rows(s, data["deploys"].get(s["module"], []), data.get("now")) for s in modules}
    kinds = in_time_order({stage_kind(n) for r in rows.values() for row in r for n in row["stages"]})
    if kinds:
        body.append(_legend(kinds))
    for status in modules:
        body.append(_module(status, rows[status["module"]], ui))
    body.append(_cleanup(data.get("cleanup")))
    return PAGE.replace("{stage_colours}", STAGE_CSS).replace("{body}", "\n".join(body))


def _environments(environments: dict[str, Any] | None) -> str:
    """The module x environment matrix: what serves where, who is behind, what awaits approval."""
    if not environments:
        return ""
    names = environments["names"]
    head = "".join(f"<th>{_e(n)}</th>" for n in names)
    rows = []
    for row in environments["modules"]:
        cells = []
        for name in names:
            cell = row["cells"][name]
            notes = [f"{cell['behind']} behind {cell['behind_of']}"] if cell.get("behind") else []
            if cell.get("awaiting_approval"):
                notes.append("awaiting approval: " + ", ".join(r[:8] for r in cell["awaiting_approval"]))
            cells.append(f"<td><code>{_e(cell.get('revision') or '-')}</code>"
                         + "".join(f"<br><span class=tag>{_e(n)}</span>" for n in notes) + "</td>")
        rows.append(f"<tr><td>{_e(row['module'])}</td>{''.join(cells)}</tr>")
    return (f"<h2>Environments</h2><table class=overview><tr><th>module</th>{head}</tr>"
            + "".join(rows) + "</table>")


def _overview(modules: list[dict[str, Any]]) -> str:
    if not modules:
        return ""
    rows = []
    for s in modules:
        state = s.get("state") or {}
        current = state.get("current") or {}
        agent = state.get("agent") or {}
        workers = {a["agent"]["name"]: a["worker"] for a in s.get("agents", [])}
        last = s.get("last_run") or {}
        flags = [f for f, on in (("code damaged", s.get("code") == "damaged"),
                                 ("baking", state.get("baking")), ("draining", state.get("draining")),
                                 ("deploying", state.get("owner"))) if on]
        waiting = [r for r in s.get("active", []) if r.get("status") == "waiting"]
        if waiting:
            flags.append(f"{len(waiting)} waiting")
        rows.append(
            f"<tr><td><a href='#m-{_e(s['module'])}'>{_e(s['module'])}</a></td>"
            f"<td><code>{_e(_revision_id(current))}</code></td>"
            f"<td>{_e(agent.get('name') or _per_run(s))}</td>"
            f"<td class={_worker_class(workers.get(agent.get('name', ''), ''))}>"
            f"{_e(workers.get(agent.get('name', ''), '-'))}</td>"
            f"<td>{_e(', '.join(flags) or '-')}</td>"
            f"<td class={OUTCOME_CLASS.get(last.get('status', ''), '')}>"
            f"{_e(last.get('status', '-'))}</td></tr>")
    return ("<table class=overview><tr><th>module</th><th>revision</th><th>agent</th><th>worker</th>"
            "<th>now</th><th>last request</th></tr>" + "".join(rows) + "</table>")


def _module(status: dict[str, Any], rows: list[dict[str, Any]], ui: str) -> str:
    name = status["module"]
    parts = [f"<section id='m-{_e(name)}'><h2>{_e(name)}</h2>"]
    agents = status.get("agents", [])
    if agents:
        parts.append("<p>" + " · ".join(
            f"{_e(a['agent']['name'])} <span class=tag>{_e(a.get('role') or 'agent')}</span> "
            f"<span class={_worker_class(a['worker'])}>{_e(a['worker'])}</span>" for a in agents) + "</p>")
    if status.get("code") == "damaged":
        parts.append("<p class=bad>the code store's copy of the serving revision is not its code ("
                     + _e("; ".join(status.get("code_problems", [])[:3])) + "): every run of it "
                     "refuses to start. Upload the same bundle again, or <code>deployer deploy "
                     f"--repair flows/{_e(name)}</code>, to publish it again.</p>")
    for record in status.get("active", []):
        waiting = record.get("waiting") or {}
        parts.append(f"<p class=active>request {_e(record['request_id'])}: {_e(record['status'])}"
                     f"{': ' + _e(waiting.get('what', '')) if waiting else ''}</p>")
    if rows:
        longest = max(sum(r["stages"].values()) for r in rows) or 1.0
        parts.append("<table class=deploys><tr><th>when (UTC)</th><th>request</th><th>revision</th>"
                     "<th>changed / path</th><th>outcome</th><th>live after</th>"
                     "<th>stages in time order, to scale</th></tr>")
        parts.extend(_deploy_row(row, longest) for row in rows)
        parts.append("</table>")
    parts.append(f"<p class=sub><a href='{_e(ui)}/deployments'>deployments in the Prefect UI</a></p>")
    return "".join(parts) + "</section>"


def _rows(status: dict[str, Any], deploys: list[dict[str, Any]], now: str | None) -> list[dict[str, Any]]:
    """The module's requests, newest first: those in progress (their stages so far; the one
    going on counted to ``now``), then its history."""
    rows = []
    for record in reversed(status.get("active", [])):
        stages = {}
        for stage in record.get("stages", []):
            end = stage.get("finished_at") or now
            if end and stage.get("started_at"):
                stages[stage["name"]] = max(_seconds_between(stage["started_at"], end), 0.0)
        rows.append({"at": record.get("created_at"), "request": record["request_id"],
                     "kind": record.get("kind", ""), "revision": record.get("revision") or {},
                     "trigger": record.get("trigger") or {}, "changed": "", "path": "",
                     "outcome": record.get("status", ""), "error": "", "live_after": None,
                     "stages": stages, "active": True})
    for d in reversed(deploys):
        rows.append({"at": d.get("at"), "request": d.get("request_id", ""), "kind": d.get("kind", ""),
                     "revision": d.get("revision") or {}, "trigger": d.get("trigger") or {},
                     "changed": ", ".join(d.get("changed") or []), "path": d.get("path") or "",
                     "outcome": d.get("outcome", ""), "error": (d.get("error") or {}).get("message", ""),
                     "live_after": d.get("live_after"), "stages": d.get("stages") or {}, "active": False})
    return rows


def _deploy_row(row: dict[str, Any], longest: float) -> str:
    stages = {name: row["stages"][name] for name in in_time_order(row["stages"])}
    total = sum(stages.values())
    bars = "".join(
        f"<span class='bar k-{_e(stage_kind(name))}' style='width:{max(seconds / longest * 100, 0.4):.2f}%' "
        f"title='{_e(name)} {seconds:.1f} s'></span>" for name, seconds in stages.items())
    outcome, kind = row["outcome"], row["kind"]
    rollback = kind == "rollback"
    label = {"rollback": "↩ rollback", "remove": "remove"}.get(kind, "")
    trigger = row["trigger"].get("source", "")
    live = f"{row['live_after']:.0f} s" if row["live_after"] is not None else "-"
    css = " class=active" if row["active"] else (" class=rollback" if rollback else "")
    return (f"<tr{css}><td>{_e(_when(row['at']))}</td>"
            f"<td><code>{_e(row['request'][:8])}</code> <span class=sub>{_e(trigger)}</span>"
            f"{f' <span class=tag>{_e(label)}</span>' if label else ''}</td>"
            f"<td><code>{_e(_revision_id(row['revision']))}</code></td>"
            f"<td>{_e(row['changed'] or '-')} / {_e(row['path'] or '-')}</td>"
            f"<td class={OUTCOME_CLASS.get(outcome, 'active' if row['active'] else '')} "
            f"title='{_e(row['error'])}'>{_e(outcome)}</td><td>{_e(live)}</td>"
            f"<td><div class=timeline>{bars}</div><span class=sub>{total:.1f} s</span></td></tr>")


def _legend(kinds: list[str]) -> str:
    items = "".join(f"<span class=key><span class='swatch k-{_e(k)}'></span>{_e(k)}</span>" for k in kinds)
    return (f"<p class=legend>stages: {items} <span class=sub>(bake: the window after the "
            "revision went live, the previous agent kept ready)</span></p>")


def _when(value: object) -> str:
    """An ISO time as ``2026-12-06 14:05:03 UTC`` (stored times are UTC)."""
    text = str(value or "")
    return f"{text[:19].replace('T', ' ')} UTC" if text else "-"


def _seconds_between(start: str, end: str) -> float:
    from datetime import datetime

    return (datetime.fromisoformat(end) - datetime.fromisoformat(start)).total_seconds()


def _cleanup(report: dict[str, Any] | None) -> str:
    if not report:
        return "<section><h2>cleanup</h2><p class=sub>no cleanup has run yet</p></section>"
    counts: dict[str, int] = {}
    for item in report.get("items", []):
        counts[item["outcome"]] = counts.get(item["outcome"], 0) + 1
    notable = [i for i in report.get("items", []) if i["outcome"] in ("failed", "anomaly", "deferred")]
    rows = "".join(f"<li class={'bad' if i['outcome'] != 'deferred' else 'warn'}>{_e(i['outcome'])} "
                   f"{_e(i['kind'])} {_e(i['target'])}: {_e(i.get('error') or i.get('reason', ''))}</li>"
                   for i in notable[:20])
    summary = ", ".join(f"{n} {k}" for k, n in sorted(counts.items())) or "nothing to do"
    return (f"<section><h2>cleanup</h2><p>last run {_e(report['report_id'])}: {_e(summary)}</p>"
            f"<ul>{rows}</ul></section>")


def _revision_id(revision: dict[str, Any]) -> str:
    code, config = revision.get("code_digest", ""), revision.get("config_digest", "")
    if not code:
        return "-"
    return f"{code.split(':')[-1][:12]}-{config.split(':')[-1][:8]}"


def _per_run(status: dict[str, Any]) -> str:
    """The agent cell of a module with no agent: its runs each get a container."""
    current = (status.get("state") or {}).get("current") or {}
    if current.get("isolation") != "run":
        return "-"
    return f"a container per run ({status.get('containers', 0)} running)"


def _worker_class(worker: str) -> str:
    return {"ONLINE": "ok", "OFFLINE": "bad"}.get(worker, "dim")


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


#: a colour per stage kind, in STAGE_ORDER (no two alike); the bake window is hatched: it comes
#: after the revision went live
PALETTE = ("#9aa3ad", "#c5cad1", "#e0c36b", "#6c7a89", "#2f8f83", "#17becf", "#4c78a8", "#9ecae9",
           "#f58518", "#ffbf79", "#54a24b", "#b279a2", "#88d27a", "#e45756", "#ff9da6", "#72b7b2",
           "#9d755d", "#bab0ac", "#5b4a9e", "#d6a5c9")
STAGE_CSS = "".join(f".k-{kind}{{background:{colour}}}"
                    for kind, colour in zip(STAGE_ORDER, PALETTE, strict=True)) + (
    ".k-bake{background:repeating-linear-gradient(45deg,#e45756 0 4px,#f4b6b6 4px 8px)}")

PAGE = """<!doctype html>
<html lang=en><head><meta charset=utf-8><meta name=viewport content="width=device-width">
<title>deployer dashboard</title>
<style>
body{font:14px/1.45 system-ui,sans-serif;margin:24px auto;max-width:1200px;padding:0 16px;color:#1d2330}
h1{font-size:22px;margin:0}h2{font-size:17px;margin:28px 0 6px}.sub{color:#68707d;font-size:12px}
table{border-collapse:collapse;width:100%;margin:8px 0}th,td{text-align:left;padding:5px 8px;
border-bottom:1px solid #e3e6eb;vertical-align:middle}th{font-weight:600;color:#4a5160;font-size:12px}
code{font-size:12px}.ok{color:#17803d}.bad{color:#c0262d;font-weight:600}.warn{color:#b26b00}
.dim{color:#8a919c}.tag{background:#eef1f5;border-radius:3px;padding:0 5px;font-size:11px}
.active{background:#fff7e0;padding:4px 8px;border-radius:4px}.empty{font-size:16px;padding:20px 0}
.timeline{display:flex;width:320px;height:12px;background:#f3f4f7;border-radius:3px;overflow:hidden;
display:inline-flex;margin-right:6px;vertical-align:middle}.bar{height:100%}
tr.rollback td:first-child{border-left:3px solid #b26b00}tr.active{background:#fff7e0}
td.active{color:#b26b00;font-weight:600}.legend{font-size:12px;line-height:2}
.key{white-space:nowrap;margin-right:10px}.swatch{display:inline-block;width:10px;height:10px;
border-radius:2px;margin-right:4px;vertical-align:-1px}
{stage_colours}
</style></head><body>
{body}
</body></html>
"""
