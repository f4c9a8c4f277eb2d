"""An approval of a request into an environment that requires one (``DEPLOYER_APPROVAL``)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True)
class Approval:
    """Who asked for a request that needed an approval, and who decided, when and why."""

    requested_by: str
    decision: str = ""  # approved | rejected ("" while it waits)
    by: str = ""
    at: datetime | None = None
    comment: str = ""
