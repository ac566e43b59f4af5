"""The README's examples run: each command of "Audit and time travel", in a fresh directory."""
from __future__ import annotations

from pathlib import Path

from doc_blocks import blocks, run_command, run_python, section, shell_commands

ROOT = Path(__file__).resolve().parent.parent


def test_audit_and_time_travel_commands_run(tmp_path):
    part = section((ROOT / "README.md").read_text(), "Audit and time travel")
    [shell] = blocks(part, "sh")
    commands = shell_commands(shell)
    assert len(commands) >= 6
    for command in commands:
        done = run_command(command, tmp_path)
        assert done.returncode == 0, f"{command}\n{done.stderr}"
        if command.startswith("mlmd-log history artifact 1"):
            assert "offset" in done.stdout or '"offset"' in done.stdout
    done = run_python(blocks(part, "python"), tmp_path)
    assert done.returncode == 0, done.stderr
    assert "host" in done.stdout
