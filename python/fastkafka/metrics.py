"""Metrics in Prometheus' text format: what this process's consumers and producers did.

The figures are the engine's (``src/metrics/``, the same for Rust apps): records consumed,
handled, failed, retried, dead-lettered and skipped per consumer; batches, their handling time
and rebalances; lag, stored and committed offsets per partition; per cluster and topic the
records sent, delivered, failed and pending, and the delivery latency. ``FASTKAFKA_METRICS=off``
in the environment turns recording off. In an app served by a web framework, expose
:func:`render` on a route::

    @fastapi_app.get("/metrics")
    def metrics() -> Response:
        return Response(fastkafka.metrics.render(), media_type=fastkafka.metrics.CONTENT_TYPE)

``fastkafka run --metrics-port PORT`` serves ``/metrics`` for all its workers: each worker
writes its figures to a file every second and the command's server returns them all
(:func:`merge_workers`), each sample labelled ``worker="<n>"``.
"""

from __future__ import annotations

import re

from . import _core

__all__ = ["CONTENT_TYPE", "merge_workers", "render"]

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

_SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? (.*)$")


def render() -> str:
    """This process's figures in Prometheus' text format (0.0.4)."""
    return _core.render_metrics()


def merge_workers(texts: dict[int, str]) -> str:
    """The workers' texts as one exposition: each sample gets a ``worker`` label, each
    metric's HELP and TYPE lines appear once, before its first sample."""
    comments: dict[str, list[str]] = {}
    samples: dict[str, list[str]] = {}
    for worker, text in sorted(texts.items()):
        described_here: set[str] = set()
        for line in text.splitlines():
            if line.startswith("# "):
                name = line.split()[2]
                if name not in comments or name in described_here:
                    comments.setdefault(name, []).append(line)
                    described_here.add(name)
                continue
            match = _SAMPLE.match(line)
            if match is None:
                continue
            name, _, labels, value = match.groups()
            family = re.sub(r"_(bucket|sum|count)$", "", name)
            family = family if family in comments else name
            labelled = f'worker="{worker}"' + (f",{labels}" if labels else "")
            samples.setdefault(family, []).append(f"{name}{{{labelled}}} {value}")
    lines: list[str] = []
    for family in dict.fromkeys([*comments, *samples]):
        lines.extend(comments.get(family, []))
        lines.extend(samples.get(family, []))
    return "\n".join(lines) + "\n"
