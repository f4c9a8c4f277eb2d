"""When a waiting operation looks again. One rule for all of them:

    the n-th pause is ``first * growth**n``, at most ``cap``.

A short pause (at most ``INLINE_PAUSE_SECONDS``) that still ends inside the invocation's slice
(``DEPLOYER_STEP_SLICE_SECONDS``) is slept in the invocation; any other ends the invocation with a
delayed continuation message. So a local worker that is ONLINE in two seconds is waited for in
place, while an ACR build of minutes or an ACI start costs a handful of short invocations, each
one look, and no billed time in between.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Backoff:
    first: float
    growth: float
    cap: float

    def pause(self, looks: int) -> float:
        return min(self.first * self.growth ** max(looks, 0), self.cap)


def expecting(seconds: float, cap: float) -> Backoff:
    """Looks paced by how long the wait usually takes: the first after a quarter of it."""
    return Backoff(first=max(seconds / 4, 0.25), growth=1.25, cap=cap)


#: the longest pause slept inside an invocation: shorter than a queue round trip is worth
INLINE_PAUSE_SECONDS = 5.0
#: a finished build is noticed within half a minute (a look is one ARM read, ~0.2 s billed)
BUILD_CAP_SECONDS = 30.0
#: an agent starting: ACI takes 35-110 s, a local worker 2 s; noticed within 15 s
START_CAP_SECONDS = 15.0
#: old agents' in-flight runs may take hours; looking every five minutes at most costs nothing
DRAIN = Backoff(first=2.0, growth=1.5, cap=300.0)
#: a flow run's own start on a process worker, once the worker has picked it up: a process,
#: Python and prefect imported, the pull steps run (3-7 s measured locally)
RUN_START_SECONDS = 3.0
#: a smoke run of a flow: seconds to minutes
SMOKE = Backoff(first=1.0, growth=1.5, cap=10.0)
#: a baking revision's runs: a failure is noticed within 15 s, so a rollback follows at once
BAKE = Backoff(first=2.0, growth=1.5, cap=15.0)
#: a request whose module is busy: the owner wakes it when done; this is only the fallback
ADMISSION = Backoff(first=5.0, growth=2.0, cap=60.0)
#: a step whose module lock another step holds (steps are short)
LOCK_BUSY_SECONDS = 2
#: a waiter nudges an owner whose next look is overdue by this much (its message was lost)
NUDGE_AFTER_SECONDS = 300.0
