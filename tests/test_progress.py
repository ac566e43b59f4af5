"""Progress bars: on a terminal they show counts and rate; in scripts nothing is printed."""
import io
import sys

from mlmd_log.progress import Progress


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_no_terminal_no_output(monkeypatch):
    err = io.StringIO()
    monkeypatch.setattr(sys, "stderr", err)
    with Progress("replay", total=10) as bar:
        bar.update(5)
        assert not bar.shown
    assert err.getvalue() == ""


def test_terminal_shows_count_total_and_rate(monkeypatch):
    err = _Terminal()
    monkeypatch.setattr(sys, "stderr", err)
    with Progress("replay", total=10) as bar:
        assert bar.shown
        bar.update(4)
        bar.update(8, total=20)  # (the log grew while we read it)
    text = err.getvalue()
    assert "replay" in text and "8/20" in text and "rec/s" in text and "40%" in text


def test_quiet_wins_over_a_terminal(monkeypatch):
    err = _Terminal()
    monkeypatch.setattr(sys, "stderr", err)
    with Progress("replay", total=10, quiet=True) as bar:
        bar.update(3)
    assert err.getvalue() == ""


def test_a_real_terminal_draws_the_bar_even_when_it_reports_no_size():
    """A pty as ssh or CI shells give it, 0x0: tqdm alone draws nothing there."""
    import os
    import pty
    import subprocess

    master, slave = pty.openpty()
    code = ("import time\nfrom mlmd_log.progress import Progress\n"
            "with Progress('replay', total=10) as bar:\n"
            "    for done in range(1, 11):\n        bar.update(done)\n        time.sleep(0.02)\n")
    child = subprocess.Popen([sys.executable, "-c", code], stdin=slave, stdout=slave, stderr=slave)
    os.close(slave)
    out = b""
    while True:
        try:
            chunk = os.read(master, 4096)
        except OSError:  # (the child closed the terminal)
            break
        if not chunk:
            break
        out += chunk
    os.close(master)
    assert child.wait(timeout=30) == 0
    assert b"replay: 100%" in out and b"10/10" in out and b"rec/s" in out
