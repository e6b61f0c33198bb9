"""Headless Chromium (Debian's, which `make test` installs) for the tests that look at pages the
way a reader's browser shows them: the AsyncAPI page and the documentation site."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path


def chromium() -> str:
    found = shutil.which("chromium")
    assert found, "Debian's chromium is needed (make test installs it)"
    return found


def headless(*arguments: str, user_data: Path) -> subprocess.CompletedProcess[bytes]:
    """Runs Chromium headless, offline (no background networking) with a profile of its own."""
    return subprocess.run(
        [chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
         "--no-first-run", "--disable-background-networking", "--disable-component-update",
         "--disable-sync", f"--user-data-dir={user_data}", *arguments],
        capture_output=True, timeout=120,
    )  # fmt: skip
