"""Rotation: how a request moves its module to a revision, as short resumable steps.

    plan.py        pure: state, registry, agents -> typed operations (operations.py)
    inputs.py      what the planner looks at; shared by the real run and ``--dry-run``
    admission.py   which request owns the module; waiting; the newest intent wins
    execute.py     one method per operation, each one look at the outside world
    steps.py       one queue message = one step: lock, token, looks, continuation, failure
    messages.py    the queue messages and their tokens; how a request is submitted
    drive.py       the same steps driven from the CLI's own process
    looks.py       when a waiting operation looks again
    source.py      the request's bundle, read when an operation needs it
    tracker.py     checkpoints in the run record
"""
