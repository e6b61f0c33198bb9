"""`make demo`: the guide's multi-cluster app, end to end, on the embedded in-memory broker.

Feeds signals to `preprocessed_signals` on both clusters, lets each consumer handle the
signals of its own cluster and forward them as predictions to `predictions` on that same
cluster, then prints what each cluster received.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from multi_cluster_example import (
    TestMsg,
    app,
    on_preprocessed_signals_1,
    on_preprocessed_signals_2,
    to_predictions_1,
    to_predictions_2,
)

from fastkafka.testing import Tester

SIGNALS_PER_CLUSTER = 3
TIMEOUT = 10.0


async def main() -> None:
    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s [%(levelname)s] %(name)s: %(message)s",
        stream=sys.stdout,
    )
    started = time.perf_counter()
    routes = [
        ("s1", on_preprocessed_signals_1, to_predictions_1),
        ("s2", on_preprocessed_signals_2, to_predictions_2),
    ]
    async with Tester(app) as tester:
        for name, consumer, _ in routes:
            signals = [TestMsg(msg=f"signal_{name}_{i}") for i in range(SIGNALS_PER_CLUSTER)]
            await tester.mirrors[consumer](signals)
        for name, consumer, producer in routes:
            expected = [((TestMsg(msg=f"signal_{name}_{i}"),),) for i in range(SIGNALS_PER_CLUSTER)]
            await getattr(app.awaited_mocks, consumer.__name__).assert_has_calls(
                expected, timeout=TIMEOUT
            )
            await tester.mirrors[producer].assert_has_calls(expected, timeout=TIMEOUT)

        elapsed = time.perf_counter() - started
        print("\nPer-cluster summary")
        print(f"{'cluster':<20} {'consumer':<28} {'handled':>7} {'predictions':>11}")
        for _, consumer, producer in routes:
            handled = getattr(app.mocks, consumer.__name__).call_count
            predictions = tester.mirrors[producer].call_count
            # Nothing from the other cluster leaked in: exactly this cluster's signals arrived.
            assert handled == predictions == SIGNALS_PER_CLUSTER, (handled, predictions)
            servers = tester.mirrors[consumer].bootstrap_servers
            print(f"{servers:<20} {consumer.__name__:<28} {handled:>7} {predictions:>11}")
        print(f"\nDone in {elapsed:.3f} s: each cluster's signals stayed on that cluster.")


if __name__ == "__main__":
    asyncio.run(main())
