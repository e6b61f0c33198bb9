"""Every example in examples/ runs and does what it says."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


@pytest.mark.parametrize(
    ("example", "expected"),
    [
        ("batches.py", "batch of 50, average 24.50"),
        ("keys_and_metadata.py", "bob paid 5: key=b'bob'"),
        ("avro.py", "received User(name='ada', age=36, email=None)"),
        ("background_tasks.py", "heartbeats before stopping"),
        ("lifespan.py", "21 doubled is 42"),
        ("demo.py", "each cluster's signals stayed on that cluster"),
    ],
)
def test_example_runs(example: str, expected: str) -> None:
    done = subprocess.run(
        [sys.executable, str(EXAMPLES / example)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=EXAMPLES,
    )
    assert done.returncode == 0, done.stderr
    assert expected in done.stdout, done.stdout
