"""Counters an emulator keeps so tests can check what the client really did."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

__all__ = ["EmulatorStats"]


@dataclass
class EmulatorStats:
    """Live counters of one app (updated on the server's event loop; read them from anywhere).

    Attributes:
        total_requests: Every request answered (or cut), all routes and statuses.
        by_status: Count per HTTP status sent.
        by_route: Count per route, e.g. ``"POST /score"``; unknown paths count as ``"other"``.
        by_route_status: Count per ``(route, status)``.
        by_deployment: ``/score`` requests routed to each deployment.
        rate_limited: 429s sent by the token bucket (``rate_limit_rps``).
        pending_rejected: 429s sent for "Too many pending requests".
        in_flight: Inference requests being processed right now.
        max_in_flight: Highest ``in_flight`` seen.
        streams_cut: Streams dropped on purpose (``stream_cut``).
        malformed: 200 bodies sent truncated (``malformed_json``).
    """

    total_requests: int = 0
    by_status: Counter[int] = field(default_factory=Counter)
    by_route: Counter[str] = field(default_factory=Counter)
    by_route_status: Counter[tuple[str, int]] = field(default_factory=Counter)
    by_deployment: Counter[str] = field(default_factory=Counter)
    rate_limited: int = 0
    pending_rejected: int = 0
    in_flight: int = 0
    max_in_flight: int = 0
    streams_cut: int = 0
    malformed: int = 0

    @property
    def throttled(self) -> int:
        """All 429s sent (token bucket and pending limit)."""
        return self.by_status[429]

    def record(self, route: str, status: int) -> None:
        """Count one answer."""
        self.total_requests += 1
        self.by_status[status] += 1
        self.by_route[route] += 1
        self.by_route_status[route, status] += 1

    def enter(self) -> None:
        """One more request in flight."""
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)

    def leave(self) -> None:
        """One request fewer in flight."""
        self.in_flight -= 1

    def reset(self) -> None:
        """Zero every counter except ``in_flight`` (requests still running stay counted)."""
        fresh = EmulatorStats(in_flight=self.in_flight, max_in_flight=self.in_flight)
        self.__dict__.update(fresh.__dict__)
