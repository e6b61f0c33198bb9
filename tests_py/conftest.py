"""Fixtures shared by the Python tests: real Kafka-compatible clusters (Tansu) on loopback."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))

from local_kafka import TansuBroker, local_clusters  # noqa: E402


@pytest.fixture
def two_clusters() -> Iterator[list[TansuBroker]]:
    """Two fresh one-broker clusters for one test (fresh ports and storage every time)."""
    with local_clusters(2) as brokers:
        yield brokers
