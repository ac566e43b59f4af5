"""Run the examples of a Markdown page: the helpers tests/test_readme.py and tests/test_docs.py share.

A ```sh block's lines that start with ``mlmd-log `` are commands (``  #`` starts a comment;
``$PWD`` is the directory they run in); other lines of it are shown, not run. ```python blocks
of one page run in order in one interpreter. ```text blocks are never run."""
from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path


def section(text: str, title: str) -> str:
    """The ``## title`` section of a page, up to the next ``## ``."""
    start = text.index(f"## {title}\n")
    end = text.find("\n## ", start + 1)
    return text[start:end if end > 0 else None]


def blocks(text: str, language: str) -> list[str]:
    """The bodies of the page's fenced blocks in ``language`` (any indentation of the fence)."""
    return [re.sub(r"(?m)^" + re.escape(indent), "", body)
            for indent, body in re.findall(rf"(?m)^([ \t]*)```{language}\n(.*?)^[ \t]*```", text, re.S)]


def shell_commands(block: str) -> list[str]:
    """The ``mlmd-log`` commands of a sh block, comments cut, continued lines joined."""
    joined = re.sub(r"\\\n\s*", " ", block)
    commands = []
    for line in joined.splitlines():
        line = line.split("  #")[0].strip()
        if line.startswith("mlmd-log "):
            commands.append(line)
    return commands


def run_command(command: str, cwd: Path, timeout: float = 120) -> subprocess.CompletedProcess:
    """One ``mlmd-log ...`` line as ``python -m mlmd_log ...`` in ``cwd``."""
    argv = [sys.executable, "-m", "mlmd_log", *shlex.split(command.replace("$PWD", str(cwd)))[1:]]
    return subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=timeout)


def run_python(blocks_: list[str], cwd: Path, timeout: float = 180) -> subprocess.CompletedProcess:
    """A page's python blocks, in order, in one fresh interpreter in ``cwd``."""
    return subprocess.run([sys.executable, "-c", "\n\n".join(blocks_)], cwd=cwd, capture_output=True,
                          text=True, timeout=timeout)
