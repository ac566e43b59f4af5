"""``python -m mlmd_log``: the ``mlmd-log`` command, for when the script is not on PATH."""
import sys

from mlmd_log.cli import main

sys.exit(main())
