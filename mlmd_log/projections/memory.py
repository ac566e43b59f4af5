"""What the engine knows without reading the projection: its id counters and what it
recently wrote or read.

One object, shared by the engine and its step writer (steps.py), so that both take ids
from the same counters and decide from the same caches. Everything here describes the
open transaction: when it is rolled back, ``restore`` returns the counters to a snapshot
and forgets the caches (what they hold may be gone from the tables).
"""
from __future__ import annotations

from typing import Any, Optional

from mlmd_log.projections.recent import Recent

# Tables whose ids the engine assigns (in log order, so a replay gives the same ids).
ID_TABLES = ("Type", "Artifact", "Execution", "Context", "Event", "Association", "Attribution")
# Bounds of the caches (recent.py). Read forms are a few hundred bytes each: 100k of them
# hold the inputs of thousands of concurrent runs in about 30 MB.
FORMS_KEPT = 100_000
# A form larger than this is not remembered (it is read back from its table when used):
# a node with a 60 MiB property would otherwise stay in memory for 100k writes.
FORM_KEPT_BYTES = 16 * 1024
LINKS_KEPT = 100_000
CONTEXT_IDS_KEPT = 10_000


class EngineMemory:
    """Id counters and bounded caches (recent.py: what steps keep using stays)."""

    def __init__(self) -> None:
        # table -> the id its next row gets.
        self.next_id: dict[str, int] = {}
        # (type_id, name) -> id of contexts that exist (reused by put_execution).
        self.context_ids: Recent = Recent(CONTEXT_IDS_KEPT)
        # (kind name, id) -> the read form last written or read for a node: the next update
        # of it (a pipeline step names its input again) reads it here, not from the table.
        self.forms: Recent = Recent(FORMS_KEPT)
        # (table, context_id, node_id) -> True: attributions and associations known to
        # exist, so a step that names an existing artifact again need not look.
        self.links: Recent = Recent(LINKS_KEPT)

    # -- id counters --------------------------------------------------------
    def reload_counters(self, db: Any) -> None:
        """The counters from the tables (on open: ids go on from the largest stored)."""
        for table in ID_TABLES:
            row = db.one(f"SELECT MAX(`id`) FROM `{table}`")
            self.next_id[table] = (row[0] or 0) + 1

    def rows_created(self) -> int:
        """Nodes, types, events and links ever created: how big the projection has grown."""
        return sum(self.next_id.values()) - len(self.next_id)

    def snapshot(self) -> dict[str, int]:
        return dict(self.next_id)

    def restore(self, snapshot: dict[str, int]) -> None:
        """The counters of ``snapshot``, and nothing cached (the rows may be rolled back)."""
        self.next_id = dict(snapshot)
        self.context_ids.clear()
        self.forms.clear()
        self.links.clear()

    # -- read forms ---------------------------------------------------------
    def form(self, kind: str, node_id: int) -> Optional[bytes]:
        """The node's remembered read form (now the most recently used), or None."""
        return self.forms.use((kind, node_id))

    def remember_form(self, kind: str, node_id: int, data: bytes) -> None:
        """Bounded, recently used first kept: a node written (or loaded) again moves to the
        end, and the older half goes when the bound is reached. A large form is forgotten
        instead (and an older form of the node with it, which is stale now)."""
        if len(data) > FORM_KEPT_BYTES:
            self.forms.pop((kind, node_id), None)
            return
        self.forms.put((kind, node_id), data)
        self.forms.trim()

    def forget_form(self, kind: str, node_id: int) -> None:
        self.forms.pop((kind, node_id), None)

    # -- links and contexts -------------------------------------------------
    def note_link(self, key: tuple[str, int, int]) -> None:
        self.links.put(key, True)  # (trimmed by StepWriter.take only: queued links must stay known)

    def knows_link(self, key: tuple[str, int, int]) -> bool:
        return self.links.use(key) is not None

    def remember_context_id(self, key: tuple[int, str], context_id: int) -> None:
        self.context_ids.put(key, context_id)
        self.context_ids.trim()
