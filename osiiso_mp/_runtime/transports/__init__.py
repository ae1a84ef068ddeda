"""Worker transports: how the supervisor reaches its workers.

The supervisor asks its transport for a link to each new worker and from then on talks only
to links (:mod:`._base`); the local fork-server transport (:mod:`._local`) is the first.
"""

from ._base import (
    ELSEWHERE,
    ON_THIS_HOST,
    Capabilities,
    LinkEvents,
    Transport,
    WorkerLink,
    make_transport,
)

__all__ = [
    "ELSEWHERE",
    "ON_THIS_HOST",
    "Capabilities",
    "LinkEvents",
    "Transport",
    "WorkerLink",
    "make_transport",
]
