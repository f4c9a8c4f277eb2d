"""Module locks on Azurite blob leases, with a real second process as the other holder."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from deployer.bootstrap import build
from deployer.errors import LockBusy
from tests.integration.conftest import settings_for

ROOT = Path(__file__).resolve().parents[2]

HOLDER = textwrap.dedent("""
    import sys, time
    from deployer.bootstrap import build
    from tests.integration.conftest import settings_for
    services = build(settings_for(sys.argv[1], suffix=sys.argv[2]))
    with services.state.lock("finance"):
        print("locked", flush=True)
        time.sleep(3600)
""")


def test_lock_is_renewed_while_held_and_freed_after_its_holder_dies(storage_connection: str) -> None:
    suffix = os.urandom(5).hex()
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, storage_connection, suffix],
                              cwd=ROOT, stdout=subprocess.PIPE, text=True, start_new_session=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        locked_at = time.monotonic()
        services = build(settings_for(storage_connection, suffix=suffix))
        with pytest.raises(LockBusy), services.state.lock("finance", wait_seconds=1):
            pass
        # past one lease length (15 s) the holder still has it: it renews in the background
        time.sleep(max(0.0, 18 - (time.monotonic() - locked_at)))
        with pytest.raises(LockBusy), services.state.lock("finance", wait_seconds=1):
            pass
        os.kill(holder.pid, signal.SIGKILL)  # dies without releasing
        holder.wait(timeout=10)
        with services.state.lock("finance", wait_seconds=30) as lock:
            assert lock.held
    finally:
        if holder.poll() is None:
            os.kill(holder.pid, signal.SIGKILL)
            holder.wait(timeout=10)
