"""Health probes: is the app live (making progress), is it ready (worth sending work)?

The engine computes both (``src/health.rs``, the same for Rust apps), from flags its consumer
loops and clients keep, so a check costs no network call and never waits:

- **live** unless a consumer has not polled for ``polling_ttl`` seconds, one batch has been in
  its handler for longer than ``consuming_ttl``, or a consumer's loop ended. Both limits
  default to the consumer's ``max_poll_interval_ms`` (300 s): past it Kafka has given its
  partitions to another group member anyway. Waiting for records counts as polling.
- **ready** while the app runs (not while it stops), every cluster it uses answers (a cluster
  is unreachable once its clients saw every broker go down, and reachable again when it answers
  a request, asked every second), and every consumer holds its partitions.

``FastKafka(polling_ttl=30, consuming_ttl=120)`` sets the limits; ``app.health()`` returns the
report as a JSON-ready dict: ``live``, ``ready``, ``state``, ``problems`` (one sentence per
reason, naming consumer, topic and cluster), ``consumers`` and ``clusters``. In an app served
by a web framework::

    @fastapi_app.get("/readyz")
    def readyz() -> JSONResponse:
        health = kafka_app.health()
        return JSONResponse(health, status_code=200 if health["ready"] else 503)

``fastkafka run --health-port PORT`` serves ``/healthz`` (liveness) and ``/readyz``
(readiness) for all its workers (:func:`merge_workers`): each worker writes its report to a
file every second and the command answers 200 or 503 with every worker's report.
"""

from __future__ import annotations

from typing import Any

__all__ = ["STALE_AFTER_SECONDS", "merge_workers"]

# A worker whose last report is older than this is stuck (or gone): not live.
STALE_AFTER_SECONDS = 10.0


def merge_workers(
    reports: dict[int, tuple[dict[str, Any], float] | None], stopping: bool = False
) -> dict[str, Any]:
    """The health of ``fastkafka run``'s workers as one report: live when every worker is,
    ready when every worker is and the command is not stopping. ``reports`` maps each worker
    to (its last report, seconds since it was written), or None before its first."""
    problems: list[str] = ["the command is stopping"] if stopping else []
    live, ready = True, not stopping
    workers: dict[str, dict[str, Any] | None] = {}
    for worker, written in sorted(reports.items()):
        if written is None:
            ready = False
            problems.append(f"worker {worker}: starting (no health report yet)")
            workers[str(worker)] = None
            continue
        report, age = written
        workers[str(worker)] = report
        if age > STALE_AFTER_SECONDS:
            live = ready = False
            problems.append(
                f"worker {worker}: no health report for {age:.1f} s (stuck or gone; each "
                "worker reports every second)"
            )
            continue
        live &= bool(report["live"])
        ready &= bool(report["ready"])
        problems.extend(f"worker {worker}: {problem}" for problem in report["problems"])
    return {"live": live, "ready": ready, "problems": problems, "workers": workers}
