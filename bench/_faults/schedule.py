"""The seeded schedule of faults: every kind once, then kills of parts drawn at random."""

from __future__ import annotations

import random
from dataclasses import dataclass

PARTS = ("api", "projector", "worker", "orchestrator-a", "orchestrator-b", "nats-server")
ORCHESTRATORS = ("orchestrator-a", "orchestrator-b")


@dataclass(frozen=True)
class Episode:
    kind: str  # kill (kill -9, restarted as systemd would), nats-restart, orchestrator-away, disk-full
    part: str | None
    gap_s: float  # how long the load runs alone before it

    def __str__(self) -> str:
        return f"{self.kind} {self.part}" if self.part else self.kind


def plan(seed: int, rounds: int, gap_s: tuple[float, float]) -> list[Episode]:
    """`rounds` episodes; from 9 on, each kind (and a kill of each part) is among them."""
    rng = random.Random(seed)
    every = [("kill", part) for part in PARTS] + [
        ("nats-restart", "nats-server"),
        ("orchestrator-away", rng.choice(ORCHESTRATORS)),
        ("disk-full", None),
    ]
    rng.shuffle(every)
    chosen = every[:rounds] + [("kill", rng.choice(PARTS)) for _ in range(rounds - len(every))]
    rng.shuffle(chosen)
    return [Episode(kind, part, round(rng.uniform(*gap_s), 2)) for kind, part in chosen]
