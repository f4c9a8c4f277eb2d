"""Each flow run's memory limit, kept by its agent.

A deployment that asks for ``memory`` (``bundle.sizing``) is registered with the limit in its
job variables' ``env`` (``RUN_MEMORY_ENV``, bytes: no secret). Prefect's process worker starts
every flow run as a process of its own with that environment, and changes nothing else about how
it starts it.

The agent keeps the limits. Its preflight forks a *limiter* (``LIMITER``) before the worker starts:
a small loop that reads ``/proc`` only, every ``POLL_SECONDS``. It walks the processes under the
worker, and for each flow-run process that carries a limit it adds up the resident memory of that
process and every process under it (shared pages counted once). A run above its limit is stopped
(SIGKILL to that run's processes and its process group, nothing else): Prefect then reports the
run CRASHED (exit code -9). The limiter prints ``DEPLOYER-LIMIT <json>`` to the agent's log,
naming the flow run, what it used and its limit. A process without a flow run id (the warm
checker, say) is never limited.

Counting resident memory (not address space) means threads' stacks and mapped but untouched
memory do not count, as in a container's memory limit. The limiter looks every half second, so a
spike shorter than that can pass. The agent's own size (its ACI container) is the backstop.
Like the preflight, the script imports nothing of the deployer: the agent's environment does not
have it.
"""

from __future__ import annotations

import json
from typing import Any

#: the variable in a flow run's environment that gives its limit, in bytes
RUN_MEMORY_ENV = "DEPLOYER_RUN_MEMORY_LIMIT_BYTES"
POLL_SECONDS = 0.5
MARKER = "DEPLOYER-LIMIT "

LIMITER = r'''
def _children(pid):
    out = []
    try:
        tasks = os.listdir("/proc/%d/task" % pid)
    except OSError:
        return out
    for task in tasks:
        try:
            with open("/proc/%d/task/%s/children" % (pid, task)) as handle:
                out += [int(p) for p in handle.read().split()]
        except OSError:
            pass
    return out


def _rss(pid, page):
    try:
        with open("/proc/%d/statm" % pid) as handle:
            return int(handle.read().split()[1]) * page
    except (OSError, IndexError, ValueError):
        return 0


def _pss(pid, page):
    """Resident memory with shared pages divided among their sharers (what a forked worker pool
    really adds); the plain resident size where the kernel has no smaps_rollup."""
    try:
        with open("/proc/%d/smaps_rollup" % pid) as handle:
            for line in handle:
                if line.startswith("Pss:"):
                    return int(line.split()[1]) * 1024
    except (OSError, IndexError, ValueError):
        pass
    return _rss(pid, page)


def _limit(pid, name):
    """(limit in bytes, flow run id) from a process's environment; (None, None) without one."""
    try:
        with open("/proc/%d/environ" % pid, "rb") as handle:
            pairs = dict(item.split(b"=", 1) for item in handle.read().split(b"\0") if b"=" in item)
    except OSError:
        return None, None
    value, run = pairs.get(name.encode()), pairs.get(b"PREFECT__FLOW_RUN_ID")
    if not value or not value.isdigit() or not run:  # not a flow run (not yet, or never)
        return None, None
    return int(value), run.decode()


def _tree(pid):
    found, stack = [], [pid]
    while stack:
        current = stack.pop()
        found.append(current)
        stack += _children(current)
    return found


def _limiter(name, poll):
    """Forked by the agent before its worker starts: stop any flow run above its limit."""
    import signal, time
    parent, page, limits = os.getppid(), os.sysconf("SC_PAGE_SIZE"), {}
    while os.getppid() == parent:
        time.sleep(poll)
        try:
            _look(parent, name, page, limits, signal.SIGKILL)
        except Exception as exc:  # never let one bad look end the limiter
            print("deployer limiter: " + type(exc).__name__, file=sys.stderr, flush=True)
    os._exit(0)


def _look(parent, name, page, limits, kill):
    runs = [p for p in _children(parent) if p != os.getpid()]
    for pid in list(limits):
        if pid not in runs:
            del limits[pid]
    for pid in runs:
        if pid not in limits:
            # a process between fork and exec still shows the worker's environment: only a
            # limit found is kept; the others are read again at the next look
            limit, run = _limit(pid, name)
            if limit is None:
                continue
            limits[pid] = (limit, run)
        limit, run = limits[pid]
        tree = _tree(pid)
        if sum(_rss(p, page) for p in tree) <= limit:
            continue
        used = sum(_pss(p, page) for p in tree)  # shared pages counted once
        if used <= limit:
            continue
        for victim in tree:
            try:
                os.kill(victim, kill)
            except OSError:
                pass
        try:
            if os.getpgid(pid) == pid:  # its own group: what it started and left behind too
                os.killpg(pid, kill)
        except OSError:
            pass
        print("DEPLOYER-LIMIT " + json.dumps({"flow_run": run, "pid": pid, "used": used,
                                              "limit": limit}), flush=True)
'''


def start_limiter(poll: float = POLL_SECONDS) -> str:
    """The preflight's lines that fork the limiter (``LIMITER`` must be in the script)."""
    return (f"if os.fork() == 0:\n    _limiter({RUN_MEMORY_ENV!r}, {poll!r})\n")


#: a flow run in a process of its own (``isolation: run`` locally): the limiter forked first,
#: then Prefect's engine runs the run (``PREFECT__FLOW_RUN_ID``) as its child, under that limit
RUNNER = "import json, os, subprocess, sys\n" + LIMITER + start_limiter() + r'''
code = subprocess.call([sys.executable, "-m", "prefect.engine"])
print("DEPLOYER-RUN-EXIT %d" % code, flush=True)
os._exit(code if code >= 0 else 128 - code)
'''


def parse(log: str) -> list[dict[str, Any]]:
    """The runs the limiter stopped, from an agent's log."""
    found = []
    for line in log.splitlines():
        at = line.find(MARKER)  # a run's unfinished output may come first on the line
        if at >= 0:
            try:
                found.append(json.loads(line[at + len(MARKER):]))
            except ValueError:
                continue
    return found
