"""The docs/ pages' examples run: each page's ```python blocks and ```sh commands (lines starting
``mlmd-log ``), in page order, in one interpreter and one fresh directory per page. ```text blocks,
which need Kafka, MySQL or a running server, are shown and not run."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from doc_blocks import run_python, shell_commands

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
PAGES = sorted(p.name for p in DOCS.glob("*.md") if p.name != "README.md")
# Pages about the code, not its use: what they show is not meant to be run.
WITHOUT_EXAMPLES = {"architecture.md"}


def _steps(text: str) -> list[tuple[str, str]]:
    """The page's runnable blocks in page order: ("sh", command) or ("python", code)."""
    steps = []
    for match in re.finditer(r"(?m)^```(sh|python)\n(.*?)^```", text, re.S):
        language, body = match.groups()
        if language == "sh":
            steps += [("sh", command) for command in shell_commands(body)]
        else:
            steps.append(("python", body))
    return steps


_PRELUDE = """
import shlex as _shlex, subprocess as _subprocess, sys as _sys, os as _os
def _mlmd_log(command):
    argv = [_sys.executable, "-m", "mlmd_log", *_shlex.split(command.replace("$PWD", _os.getcwd()))[1:]]
    done = _subprocess.run(argv, capture_output=True, text=True, timeout=120)
    print(done.stdout, end="")
    if done.returncode != 0:
        raise SystemExit(f"exit {done.returncode}: {command}\\n{done.stderr}")
"""


@pytest.mark.parametrize("page", PAGES)
def test_page_examples_run(page, tmp_path):
    """One interpreter per page runs its python blocks and, between them in page order, its
    commands (each as ``python -m mlmd_log``), so later blocks see what earlier ones made."""
    steps = _steps((DOCS / page).read_text())
    if page in WITHOUT_EXAMPLES:
        assert not steps, f"{page} now has runnable examples: take it off WITHOUT_EXAMPLES"
        return
    assert steps, f"{page} has no runnable example"
    script = [_PRELUDE] + [body if language == "python" else f"_mlmd_log({body!r})\n" for language, body in steps]
    done = run_python(script, tmp_path, timeout=300)
    assert done.returncode == 0, f"{page}\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"


def test_every_page_is_indexed_and_linked():
    index = (DOCS / "README.md").read_text()
    for page in PAGES:
        assert f"({page})" in index, f"docs/README.md does not link {page}"
    assert "docs/README.md" in (ROOT / "README.md").read_text()


def test_links_between_pages_resolve():
    for path in DOCS.glob("*.md"):
        for target in re.findall(r"\]\(([^)#:]+\.md)(?:#[^)]*)?\)", path.read_text()):
            assert (path.parent / target).resolve().exists(), f"{path.name} links {target}"
