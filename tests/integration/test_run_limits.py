"""The agent's limiter on real processes: a stand-in worker forks it as the preflight does and
starts "flow runs" (one above its limit, one within, one without a limit, and a process that is
no flow run); only the run above its limit is stopped, with every process it started, and the
agent's log says which."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from deployer import run_limits

MB = 1024**2
#: a run that holds ``size`` bytes of memory it has written, in a child process of its own when
#: ``nested`` (what a flow that runs a tool does), until it is stopped or 30 s pass
RUN = ("import os, subprocess, sys, time\n"
       "size, nested = int(sys.argv[1]), sys.argv[2] == 'nested'\n"
       "if nested:\n"
       "    subprocess.run([sys.executable, '-c', 'import time; b = bytearray(%d); time.sleep(30)' % size])\n"
       "else:\n"
       "    block = bytearray(size)\n"
       "    time.sleep(30)\n")
WORKER = run_limits.LIMITER.join(["import json, os, sys\n", run_limits.start_limiter(0.1) + r'''
import subprocess, time
runs = {}
for name, limit, size, how in json.loads(sys.argv[1]):
    env = dict(os.environ, PREFECT__FLOW_RUN_ID=name) if name != "not-a-run" else dict(os.environ)
    if limit:
        env[sys.argv[2]] = str(limit)
    runs[name] = subprocess.Popen([sys.executable, "-c", sys.argv[3], str(size), how], env=env)
time.sleep(3)
print("RESULT " + json.dumps({name: p.poll() for name, p in runs.items()}), flush=True)
for p in runs.values():
    p.kill()
    p.wait()
'''])


def test_only_the_run_above_its_limit_is_stopped_with_its_children(tmp_path: Path) -> None:
    runs = [("over", 200 * MB, 400 * MB, "nested"), ("within", 600 * MB, 300 * MB, "flat"),
            ("unlimited", 0, 300 * MB, "flat"),
            ("not-a-run", 100 * MB, 300 * MB, "flat")]  # the limit's variable, but no flow run
    done = subprocess.run([sys.executable, "-c", WORKER, json.dumps(runs), run_limits.RUN_MEMORY_ENV, RUN],
                          capture_output=True, text=True, timeout=60, cwd=tmp_path)
    result = json.loads(next(line for line in done.stdout.splitlines() if line.startswith("RESULT "))[7:])
    assert result == {"over": -9, "within": None, "unlimited": None, "not-a-run": None}, done.stderr
    [stopped] = run_limits.parse(done.stdout)
    assert stopped["flow_run"] == "over" and stopped["limit"] == 200 * MB
    assert stopped["used"] > 200 * MB  # counted with the process it started
