"""What each finished operation found: one typed result per operation type, which the run record
keeps as its stage's detail (``codec.to_data``) and later operations read back typed
(``Context.result``). The field names are the detail's keys, as records written before results
were typed have them."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from deployer.models import AgentRef, Revision
from deployer.ports.images import Image


@dataclass(frozen=True)
class Published:
    published: bool
    #: what was wrong with the copy the store held (it was replaced), when it was damaged
    repaired: tuple[str, ...] = ()


@dataclass(frozen=True)
class CodeChecked:
    run_id: str


@dataclass(frozen=True)
class ImageReady:
    image: Image
    built: bool


@dataclass(frozen=True)
class AgentStarted:
    agent: str
    queue: str


@dataclass(frozen=True)
class EntrypointsLoaded:
    entrypoints: int


@dataclass(frozen=True)
class Online:
    online_after_looks: int


@dataclass(frozen=True)
class Registered:
    deployments: tuple[str, ...]
    removed: tuple[str, ...] = ()


@dataclass(frozen=True)
class Ready:
    queue: str
    deployments: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class SmokeDone:
    run_id: str
    state: str


@dataclass(frozen=True)
class Held:
    rehomed: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class Committed:
    revision: str
    agent: str
    draining: tuple[str, ...] = ()
    woke: int = 0  # requests waiting for the module that the commit woke
    previous: Revision | None = None
    previous_agent: AgentRef | None = None
    #: the revision as it serves from the commit on: its image (for a code-only revision, the
    #: one it runs in) and whether its runs pull from the code store
    serving: Revision | None = None


@dataclass(frozen=True)
class Baked:
    #: passed | rolled_back | superseded | removed
    outcome: str
    runs: tuple[dict[str, Any], ...] = ()
    ratio: float = 0.0
    previous_ratio: float = 0.0
    reason: str = ""
    to: str = ""  # the revision rolled back to
    serving: str = ""  # the agent serving after a rollback
    by: str = ""  # the request that superseded or removed it
    rollback_request: str = ""  # the rollback request made when the previous agent was gone
    note: str = ""
    handback: dict[str, Any] = field(default_factory=dict)

    @property
    def rolled_back(self) -> bool:
        return self.outcome == "rolled_back"

    @property
    def removed(self) -> bool:
        return self.outcome == "removed"


@dataclass(frozen=True)
class Drained:
    leftover: tuple[str, ...] = ()
    crashed: tuple[str, ...] = ()
    reason: str = ""
    timed_out: bool = False


@dataclass(frozen=True)
class Stopped:
    stopped: str


Result = (Published | CodeChecked | ImageReady | AgentStarted | EntrypointsLoaded | Online
          | Registered | Ready | SmokeDone | Held | Committed | Baked | Drained | Stopped)
