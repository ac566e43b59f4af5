"""The command line's contract for mistakes: exit code 1 and one line naming the problem
(never a traceback), 2 for a usage error."""
from __future__ import annotations

import subprocess
import sys


def _mlmd_log(*argv: str, cwd: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "mlmd_log.cli", *argv], capture_output=True, text=True, cwd=cwd,
                          timeout=60)


def _one_line_failure(done: subprocess.CompletedProcess, *words: str) -> None:
    assert done.returncode == 1, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("mlmd-log: "), done.stderr
    assert "Traceback" not in done.stderr
    for word in words:
        assert word in lines[0], lines[0]


def test_a_projection_that_is_not_a_database_is_one_line(tmp_path):
    (tmp_path / "notes.txt").write_text("not a database\n" * 100)
    (tmp_path / "log").mkdir()
    done = _mlmd_log("replay", "--log", "log", "--into", "sqlite:///notes.txt", cwd=str(tmp_path))
    _one_line_failure(done, "FailedPreconditionError", "notes.txt", "not a database")


def test_a_projection_path_that_is_a_directory_is_one_line(tmp_path):
    (tmp_path / "log").mkdir()
    done = _mlmd_log("replay", "--log", "log", "--into", "sqlite:///log", cwd=str(tmp_path))
    _one_line_failure(done, "Cannot open the projection sqlite:///log")


def test_a_data_dir_that_is_a_file_is_one_line(tmp_path):
    (tmp_path / "data").write_text("x")
    done = _mlmd_log("info", "--data-dir", "data", cwd=str(tmp_path))
    _one_line_failure(done, "NotFoundError", "data")


def test_an_unknown_command_is_a_usage_error(tmp_path):
    done = _mlmd_log("no-such-command", cwd=str(tmp_path))
    assert done.returncode == 2 and "invalid choice" in done.stderr
