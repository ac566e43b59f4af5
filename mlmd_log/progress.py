"""Progress of long work (replay, export, catch-up): a tqdm bar on a terminal, silence in scripts."""
from __future__ import annotations

import shutil
import sys
from typing import Any, Optional


class Progress:
    """Reports ``done`` out of ``total`` records; a bar (rate, ETA) only when stderr is a
    terminal and the caller did not ask for quiet, so piped output and logs stay clean."""

    def __init__(self, description: str, total: Optional[int] = None, quiet: bool = False, unit: str = "rec"):
        self._bar: Any = None
        if not quiet and sys.stderr.isatty():
            from tqdm import tqdm

            # (the size from shutil: 80x24 where a terminal reports 0x0, as some ptys do; tqdm
            # would draw a bar of no width, or hide it as below the screen's 0 lines)
            size = shutil.get_terminal_size()
            self._bar = tqdm(total=total, desc=description, unit=unit, unit_scale=total is None or total >= 10_000,
                             ncols=size.columns, nrows=size.lines, file=sys.stderr, leave=True)
        self._done = 0

    @property
    def shown(self) -> bool:
        return self._bar is not None

    def update(self, done: int, total: Optional[int] = None) -> None:
        """Moves the bar to ``done`` (absolute), with a new ``total`` when the end moved."""
        if self._bar is None:
            return
        if total is not None and total != self._bar.total:
            self._bar.total = total
        if done > self._done:
            self._bar.update(done - self._done)
            self._done = done

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None

    def __enter__(self) -> "Progress":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
