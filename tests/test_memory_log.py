"""MemoryLog: the Log contract without a disk."""
from __future__ import annotations

import pytest

from mlmd_log.producer import MemoryLog

from contracts import LogContract


class TestMemoryLogContract(LogContract):
    @pytest.fixture
    def log(self):
        with MemoryLog() as log:
            yield log
