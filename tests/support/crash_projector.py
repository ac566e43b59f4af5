"""`mlmd-log` with a crash point installed (``MLMD_CRASH_AT``, see crash_points.py): the
crash harness runs the projector service through it."""
from __future__ import annotations

import sys

from crash_points import install_from_env

if __name__ == "__main__":
    install_from_env()
    from mlmd_log.cli import main

    sys.exit(main(sys.argv[1:]))
