"""Shared fixtures. The reference ml-metadata lives in its own virtualenv (scripts/ref_venv.sh).

The helpers the tests share (dumps, fault injectors, contracts, worker scripts) live in
tests/support/; it goes on sys.path here so a test imports them by their plain module name."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SUPPORT = Path(__file__).resolve().parent / "support"
if str(SUPPORT) not in sys.path:
    sys.path.insert(0, str(SUPPORT))


@pytest.fixture(scope="session")
def ref_python() -> str:
    """The reference interpreter. Skips locally when it is missing; fails in CI, where
    scripts/test.sh always creates it, so a reference test can never silently vanish."""
    python = os.environ.get("MLMD_REF_PYTHON") or str(ROOT / ".venv-ref" / "bin" / "python")
    problem = None
    if not Path(python).exists():
        problem = "reference ml-metadata venv missing: run scripts/ref_venv.sh"
    elif subprocess.run([python, "-c", "import ml_metadata"], capture_output=True).returncode != 0:
        problem = f"{python} cannot import ml_metadata: run scripts/ref_venv.sh"
    if problem:
        if os.environ.get("CI"):
            pytest.fail(problem)
        pytest.skip(problem)
    return python


@pytest.fixture(scope="session")
def mysql_url() -> str:
    """A MariaDB/MySQL server for projection tests: MLMD_TEST_MYSQL_URL (compose/mariadb.sh
    exports one). Skips locally without it; fails in CI, where .ci/run starts MariaDB."""
    url = os.environ.get("MLMD_TEST_MYSQL_URL")
    if not url:
        if os.environ.get("CI"):
            pytest.fail("MLMD_TEST_MYSQL_URL is not set: .ci/run must start MariaDB (compose/mariadb.sh)")
        pytest.skip("no MariaDB: set MLMD_TEST_MYSQL_URL=mysql://user:pass@127.0.0.1:3306/db")
    return url


_FIGURES: dict[str, str] = {}


@pytest.fixture(scope="session")
def report_figure():
    """``report_figure(name, text)``: a figure a guarantee test measured (kills survived, calls
    fuzzed, corruptions detected), printed at the end of the run for README's guarantees table."""
    return _FIGURES.__setitem__


def pytest_terminal_summary(terminalreporter) -> None:
    if _FIGURES:
        terminalreporter.section("guarantee figures")
        for name, text in sorted(_FIGURES.items()):
            terminalreporter.write_line(f"{name}: {text}")
