"""`make bench` (executors): the forwarding handler under `DynamicTaskExecutor` against the same
handler under `SequentialExecutor` (the baseline), on every CPython >= 3.11 here, on the
in-memory broker, in one run. Writes `docs/benchmarks/executors.md`.

A concurrent call costs a task; from Python 3.12 on the engine starts those tasks eagerly (see
`python/fastkafka/_tasks.py`), so the ratio is expected to differ by version. Each interpreter
gets a virtual environment under `target/bench-venvs/` with the package's dependencies and runs
the source tree's package (the release build `make build-release` put there).
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "scripts"))
from test_wheels import interpreters

ROOT = Path(__file__).resolve().parent.parent
WORKLOAD = ROOT / "benches" / "executor_workload.py"
VENVS = ROOT / "target" / "bench-venvs"
RECORDS = int(os.environ.get("BENCH_RECORDS", 100_000))
ROUNDS = int(os.environ.get("BENCH_ROUNDS", 3))
EXECUTORS = ["SequentialExecutor", "DynamicTaskExecutor"]


def bench_python(version: tuple[int, int], python: str) -> str:
    """An interpreter of `version` with the package's dependencies (made on first use)."""
    venv = VENVS / f"py{version[0]}.{version[1]}"
    if not (venv / "bin" / "python").exists():
        subprocess.run([python, "-m", "venv", str(venv)], check=True)
        pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet"]
        subprocess.run([*pip, "pydantic>=2.5", "typer>=0.12"], check=True)
    return str(venv / "bin" / "python")


def run(python: str, executor: str) -> dict[str, float]:
    spawned = time.time()
    done = subprocess.run(
        [python, str(WORKLOAD), executor, str(RECORDS)],
        env={**os.environ, "PYTHONPATH": str(ROOT / "python")},
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    if done.returncode != 0:
        sys.exit(f"{python} {executor} failed:\n{done.stderr[-3000:]}")
    result: dict[str, float] = json.loads(done.stdout.strip().splitlines()[-1])
    result["from_start_msgs_per_s"] = RECORDS / (result["end_unix"] - spawned)
    return result


def main() -> None:
    found = {version: bench_python(version, python) for version, python in interpreters().items()}
    runs: dict[tuple[tuple[int, int], str], list[dict[str, float]]] = {}
    for round_ in range(ROUNDS):
        for version, python in found.items():
            for executor in EXECUTORS:  # alternating, so that drift hits both alike
                result = run(python, executor)
                runs.setdefault((version, executor), []).append(result)
                print(f"round {round_ + 1}: {version} {executor}: {result}", flush=True)

    def median(version: tuple[int, int], executor: str, figure: str) -> float:
        return statistics.median(run[figure] for run in runs[(version, executor)])

    lines = [
        f"{RECORDS:,} records forwarded in memory (consume, validate, produce), {ROUNDS} "
        "alternating rounds, medians; baseline: the same handler under SequentialExecutor on "
        "the same interpreter",
        "",
        "| CPython | executor | from process start msgs/s (vs baseline) | msgs/s once running "
        "(vs baseline) | CPU µs/msg once running |",
        "|---|---|---|---|---|",
    ]
    for version in found:
        base = {
            f: median(version, EXECUTORS[0], f)
            for f in ("from_start_msgs_per_s", "steady_msgs_per_s")
        }
        for executor in EXECUTORS:
            start = median(version, executor, "from_start_msgs_per_s")
            steady = median(version, executor, "steady_msgs_per_s")
            cpu = median(version, executor, "steady_cpu_us_per_msg")
            lines.append(
                f"| {version[0]}.{version[1]} | {executor} "
                f"| {start:,.0f} ({start / base['from_start_msgs_per_s']:.2f}x) "
                f"| {steady:,.0f} ({steady / base['steady_msgs_per_s']:.2f}x) | {cpu:.1f} |"
            )
    table = "\n".join(lines) + "\n"
    print(table)
    (ROOT / "docs" / "benchmarks" / "executors.md").write_text(table)


if __name__ == "__main__":
    main()
