"""``deployer new NAME``: a module folder that validates as written."""

from __future__ import annotations

import stat
from pathlib import Path

from deployer.bundle.contract import check_name
from deployer.bundle.parts import BLOB_PULL_REQUIREMENT
from deployer.errors import UsageError

FILES: dict[str, str] = {
    "requirements.txt": """\
# The agent runs `prefect worker start` from this environment, so prefect is required.
prefect>=3.4,<4
# On Azure, flow runs fetch a code-only change from the deployer's storage with this (no
# image build, no new agent: see docs/architecture.md, "Fast deploys").
{blob_pull}
""",
    "Dockerfile": """\
# The agent's image. The deployer builds it without .env: secrets reach the agent as
# secure environment variables only. DEPLOYER_REGISTRY is the registry the deployer's builds
# take Prefect's image from (the app's registry, through its cache of Docker Hub, on Azure).
ARG DEPLOYER_REGISTRY=docker.io
FROM ${{DEPLOYER_REGISTRY}}/prefecthq/prefect:3-python3.11

WORKDIR /opt/prefect/flows/{name}
COPY requirements.txt ./
RUN pip install --no-cache-dir -r requirements.txt
# .dockerignore keeps .env out of the build context.
COPY . ./
""",
    ".dockerignore": ".env\n__pycache__/\n*.pyc\n",
    ".env": "# KEY=VALUE lines; values are secrets and never enter the image or a log.\n",
    ".env.example": "# Document the variables the flow needs here (no real values).\n",
    "prefect.yaml": """\
# Prefect deployments of module {name}. The deployer sets the work pool, the work queue and
# the working directory of each revision itself.
name: {name}
prefect-version: 3.4.0

# deployer:                      # the module's agent (defaults: DEPLOYER_AGENT_CPU/_MEMORY_GB)
#   agent: {{cpu: 1, memory: 1.5}}
#   isolation: agent             # or run: no agent, each flow run in a container of its own

deployments:
  - name: {name}
    entrypoint: flow.py:{function}
    parameters: {{}}
    # work_pool:
    #   job_variables: {{memory: 1}}   # each run's memory limit, in GB
""",
    "flow.py": '''\
"""Module {name}: replace this flow with your own."""

from prefect import flow, get_run_logger


@flow(name="{name}")
def {function}(who: str = "world") -> str:
    get_run_logger().info("hello %s from {name}", who)
    return f"hello {{who}}"
''',
    "deploy.sh": """\
#!/usr/bin/env bash
# Kept for habit: the old per-folder deploy.sh. It runs the deployer on this folder, from any
# folder: the deployer is $DEPLOYER, else `deployer` on PATH, else the nearest .venv/bin/deployer
# above this folder; it reads the nearest local.settings.json above this folder.
set -euo pipefail
here="$(cd "$(dirname "${{BASH_SOURCE[0]}}")" && pwd)"
deployer="${{DEPLOYER:-}}"
if [ -z "$deployer" ] && command -v deployer >/dev/null 2>&1; then
  deployer=deployer
fi
dir="$here"
while [ -z "$deployer" ] && [ "$dir" != "/" ]; do
  if [ -x "$dir/.venv/bin/deployer" ]; then deployer="$dir/.venv/bin/deployer"; fi
  dir="$(dirname "$dir")"
done
if [ -z "$deployer" ]; then
  echo "deploy.sh: no deployer found: set DEPLOYER, put deployer on PATH, or run make setup" >&2
  exit 1
fi
cd "$here"
exec "$deployer" deploy "$here" "$@"
""",
}


def create_module(parent: Path, name: str) -> Path:
    problems = check_name(name)
    if problems:  # like a folder that exists: the argument is refused (exit 2)
        raise UsageError(problems[0].message, hint="e.g. deployer new risk-report")
    root = parent / name
    if root.exists():
        raise UsageError(f"{root} already exists", hint="choose another name or remove the folder")
    root.mkdir(parents=True)
    function = name.replace("-", "_")
    for rel, template in FILES.items():
        path = root / rel
        path.write_text(template.format(name=name, function=function, blob_pull=BLOB_PULL_REQUIREMENT),
                        encoding="utf-8")
    script = root / "deploy.sh"
    script.chmod(script.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return root
