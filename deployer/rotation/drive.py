"""Driving a request from this process (``deployer deploy``, ``deployer rollback``): the same
steps the queue trigger runs, taken one after another here, with the same messages.

The request's continuation messages still go onto the queue, so if this process dies (Ctrl-C,
a lost laptop), the function app (or ``deployer dev``) picks the request up where it stopped. If
the function app takes a step meanwhile, the step lock and the tokens make one of the two act
and the other follow. A transient failure is retried here with a pause, counted against the
same ``MAX_ATTEMPTS`` as the host's redeliveries, so the CLI never abandons a request half-way.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from deployer.errors import NotFound, is_transient
from deployer.models import RunRecord
from deployer.request_queue import StepMessage
from deployer.rotation.engine import MAX_ATTEMPTS, handle_step
from deployer.rotation.tracker import LogProgress, Progress
from deployer.services import Services

logger = logging.getLogger(__name__)
#: pauses between attempts after a transient failure (storage, Prefect, ARM hiccups)
RETRY_PAUSES_SECONDS = (2.0, 4.0, 8.0, 16.0)
#: while a look is not due, re-read the record this often (another consumer may act first)
FOLLOW_SECONDS = 1.0


def drive(services: Services, module: str, request_id: str, *, progress: Progress | None = None,
          until: Callable[[RunRecord], bool] = lambda r: r.status.settled) -> RunRecord:
    progress = progress or LogProgress()
    attempts: dict[str, int] = {}
    while True:
        got = services.state.run(module, request_id)
        if got is None:
            raise NotFound(f"no run record for request {request_id} of module {module}")
        record = got.value
        if until(record):
            return record
        due = record.waiting.next_look_at if record.waiting else None
        if due is not None and due > services.now():
            services.sleep(min((due - services.now()).total_seconds(), FOLLOW_SECONDS))
            continue
        attempt = attempts.get(record.token, 0) + 1
        attempts[record.token] = attempt
        try:
            handle_step(services, StepMessage(module, request_id, record.token,
                                              services.settings.environment), attempt=attempt,
                        progress=progress)
        except Exception as exc:
            if not is_transient(exc) or attempt >= MAX_ATTEMPTS:
                raise
            pause = RETRY_PAUSES_SECONDS[min(attempt, len(RETRY_PAUSES_SECONDS)) - 1]
            progress.note(f"{str(exc).splitlines()[0]}: trying again in {pause:g}s "
                          f"(attempt {attempt} of {MAX_ATTEMPTS})")
            services.sleep(pause)
