"""The README's examples run: each command of "Audit and time travel", in a fresh directory."""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _section(title: str) -> str:
    text = (ROOT / "README.md").read_text()
    start = text.index(f"## {title}\n")
    end = text.find("\n## ", start + 1)
    return text[start:end if end > 0 else None]


def _blocks(section: str, language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", section, re.S)


def test_audit_and_time_travel_commands_run(tmp_path):
    section = _section("Audit and time travel")
    [shell] = _blocks(section, "sh")
    commands = [line.split("  #")[0].strip() for line in shell.splitlines() if line.strip()]
    assert len(commands) >= 6
    for command in commands:
        assert command.startswith("mlmd-log ")
        argv = [sys.executable, "-m", "mlmd_log", *command.replace("$PWD", str(tmp_path)).split()[1:]]
        done = subprocess.run(argv, cwd=tmp_path, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, f"{command}\n{done.stderr}"
        if command.startswith("mlmd-log history artifact 1"):
            assert "offset" in done.stdout or '"offset"' in done.stdout
    [python] = _blocks(section, "python")
    done = subprocess.run([sys.executable, "-c", python], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "host" in done.stdout
