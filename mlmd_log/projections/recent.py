"""A bounded memory that keeps what is used.

The engine remembers read forms, context ids and links so that pipeline steps need not
read them back. What a step names again and again (its run's context, the input every
step consumes) must outlive the thousands of new nodes written meanwhile, or each such
step would stop the projector to read the tables. So each use moves an entry to the
newest end, and the bound drops the least recently used half at once.
"""
from __future__ import annotations

import itertools
from typing import Any, Hashable, Optional


class Recent(dict):
    """A dict whose ``use`` and ``put`` mark an entry as the most recently used, and whose
    ``trim`` forgets the least recently used half once it holds more than ``limit``."""

    def __init__(self, limit: int):
        super().__init__()
        self.limit = limit

    def use(self, key: Hashable) -> Optional[Any]:
        """The value (now the most recently used), or None."""
        value = self.pop(key, None)
        if value is not None:
            self[key] = value
        return value

    def put(self, key: Hashable, value: Any) -> None:
        self.pop(key, None)
        self[key] = value

    def trim(self) -> None:
        if len(self) > self.limit:
            for old in list(itertools.islice(self, len(self) - self.limit // 2)):
                del self[old]
