"""`make bench` (Python part): fastkafka-rs against FastKafka 0.8.0 on the same workloads.

Both packages run `benches/tester_workloads.py` in their own virtual environment, in this one
run, on this machine; the table reports each figure and the ratio between them. FastKafka
0.8.0 imports only with its 2023 dependency pins, installed into `.venv-fastkafka-0.8.0` on the
first run.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
WORKLOADS = ROOT / "benches" / "tester_workloads.py"
FASTKAFKA_VENV = ROOT / ".venv-fastkafka-0.8.0"
FASTKAFKA_PINS = [
    "fastkafka==0.8.0",
    "anyio==3.7.1",
    "aiokafka==0.8.1",
    "kafka-python==2.0.2",
    "asyncer==0.0.2",
    "typer==0.9.0",
    "click==8.1.7",
    "ipython",
]
ROUNDTRIP_MESSAGES = 5_000
# A round trip of 5,000 messages takes a fifth of a second here and swings by a third between
# runs (how the threads happen to interleave): each package runs it this many times, in
# alternation, and the median counts.
ROUNDTRIP_RUNS = 5
SEED_RUNS = 3


def peer_python(venv: Path, packages: list[str]) -> Path:
    """The interpreter of a peer's own virtual environment, made with `packages` on first use
    (the peers' pins would clash with ours)."""
    python = venv / "bin" / "python"
    if not python.exists():
        print(f"installing {' '.join(packages)} into {venv.name} ...", flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "--quiet", *packages], check=True)
    return python


def fastkafka_python() -> Path:
    return peer_python(FASTKAFKA_VENV, FASTKAFKA_PINS)


def run(python: Path | str, workload: str, count: int) -> dict[str, float]:
    done = subprocess.run(
        [str(python), str(WORKLOADS), workload, str(count)],
        check=True,
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    result: dict[str, float] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def main() -> None:
    ours = sys.executable
    theirs = fastkafka_python()
    rows = []
    seed_ours = run(ours, "seed", SEED_RUNS)["seconds"]
    seed_theirs = run(theirs, "seed", SEED_RUNS)["seconds"]
    rows.append(
        (
            "guide's test, wall time (median)",
            f"{seed_ours * 1000:.1f} ms",
            f"{seed_theirs * 1000:.1f} ms",
            f"{seed_theirs / seed_ours:.0f}x faster",
        )
    )
    trips_ours, trips_theirs = [], []
    for _ in range(ROUNDTRIP_RUNS):
        trips_ours.append(run(ours, "roundtrip", ROUNDTRIP_MESSAGES)["messages_per_second"])
        trips_theirs.append(run(theirs, "roundtrip", ROUNDTRIP_MESSAGES)["messages_per_second"])
    trip_ours, trip_theirs = statistics.median(trips_ours), statistics.median(trips_theirs)
    rows.append(
        (
            f"Tester round trip, {ROUNDTRIP_MESSAGES} msgs (median of {ROUNDTRIP_RUNS})",
            f"{trip_ours:,.0f} msg/s",
            f"{trip_theirs:,.0f} msg/s",
            f"{trip_ours / trip_theirs:.1f}x faster",
        )
    )
    header = ("workload", "fastkafka-rs", "FastKafka 0.8.0", "ratio")
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(4)]
    for row in [header, tuple("-" * w for w in widths), *rows]:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)))


if __name__ == "__main__":
    main()
