"""`make test-wheels`: on every CPython >= 3.11 here, `pip install .` from the source tree
and the one abi3 wheel, each tested.

The wheel targets PyO3's stable ABI (`abi3-py311`), so one build serves 3.11, 3.12, 3.13 and
later. For each interpreter found (the one running this script, `python3.X` on the PATH, and
pyenv's under `~/.pyenv/versions`), a virtual environment under `target/wheel-venvs/` first
gets `pip install .` — pip builds the source tree through maturin's build backend, as a user
without a wheel would — and runs the seed's tests, the Tester's and the interpreter-shutdown
test; then the same with the wheel built once for all of them. The tests run from outside the
source tree's package, so the installed copy is what is imported. The source installs build
with cargo's dev profile (`MATURIN_PEP517_ARGS`), which reuses what `make test` compiled
already; a user's `pip install .` builds in release.
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
WHEELS = ROOT / "target" / "wheels-under-test"
VENVS = ROOT / "target" / "wheel-venvs"
TEST_DEPENDENCIES = ["pytest>=8", "pytest-asyncio>=0.24", "pytest-timeout>=2.3", "aiokafka>=0.11"]
TESTS = [
    "tests_py/test_seed.py",
    "tests_py/test_tester.py",
    # The task factory that ties a handler's tasks to its input differs across CPython versions.
    "tests_py/test_tied_work.py",
    # So does how the concurrent executor starts its calls (eagerly from 3.12 on).
    "tests_py/test_executors.py::test_the_dynamic_executor_runs_a_batch_concurrently_within_its_size",
    "tests_py/test_executors.py::test_each_concurrent_call_is_a_task_of_its_own",
    "tests_py/test_executors.py::test_by_default_a_failing_handler_is_logged_and_the_consumer_goes_on",
    "tests_py/test_executors.py::test_throw_exceptions_stops_the_consumer_and_raises_where_the_app_runs",
    "tests_py/test_never_silent.py::test_exiting_without_stopping_the_app_exits_cleanly",
]


def version_of(python: str) -> tuple[int, int] | None:
    try:
        done = subprocess.run(
            [python, "-c", "import sys; print(*sys.version_info[:2])"],
            capture_output=True, text=True, timeout=30, check=True,
        )  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return None
    major, minor = map(int, done.stdout.split())
    return major, minor


def interpreters() -> dict[tuple[int, int], str]:
    """One interpreter per CPython version >= 3.11 found on this machine."""
    candidates = [sys.executable]
    candidates += [found for m in range(11, 20) if (found := shutil.which(f"python3.{m}"))]
    pyenv = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv")) / "versions"
    candidates += sorted(glob.glob(str(pyenv / "3.*" / "bin" / "python3")))
    found: dict[tuple[int, int], str] = {}
    for python in candidates:
        version = version_of(python)
        if version is not None and version >= (3, 11):
            found.setdefault(version, python)
    return dict(sorted(found.items()))


def build_wheel() -> Path:
    shutil.rmtree(WHEELS, ignore_errors=True)
    maturin = Path(sys.executable).parent / "maturin"
    subprocess.run([str(maturin), "build", "--quiet", "-o", str(WHEELS)], cwd=ROOT, check=True)
    (wheel,) = WHEELS.glob("*.whl")
    assert "-abi3-" in wheel.name, f"{wheel.name} is not a stable-ABI wheel"
    return wheel


def test_on(version: tuple[int, int], python: str, wheel: Path) -> bool:
    name = f"py{version[0]}.{version[1]}"
    venv = VENVS / name
    if not (venv / "bin" / "python").exists():
        subprocess.run([python, "-m", "venv", str(venv)], check=True)
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet"]
    subprocess.run([*pip, *TEST_DEPENDENCIES, str(wheel)], check=True)  # and its dependencies
    passed = True
    for what, source in [("pip install .", ROOT), (f"pip install {wheel.name}", wheel)]:
        install = [*pip, "--force-reinstall", "--no-deps", str(source)]
        print(f"== {name} ({python}): {what}, then the tests", flush=True)
        env = {**os.environ, "MATURIN_PEP517_ARGS": "--profile dev"}
        subprocess.run(install, check=True, env=env)
        done = subprocess.run(
            [str(venv / "bin" / "python"), "-m", "pytest", "-q", "-p", "no:cacheprovider", *TESTS],
            cwd=ROOT,
        )
        passed = passed and done.returncode == 0
    return passed


def main() -> None:
    wheel = build_wheel()
    found = interpreters()
    print(f"{wheel.name} on CPython " + ", ".join(f"{a}.{b}" for a, b in found), flush=True)
    failed = [v for v, python in found.items() if not test_on(v, python, wheel)]
    if failed:
        sys.exit("failed on CPython " + ", ".join(f"{a}.{b}" for a, b in failed))
    print("the wheel passed on CPython " + ", ".join(f"{a}.{b}" for a, b in found))


if __name__ == "__main__":
    main()
