"""The engine's bounded memory (projections/recent.py): what is used stays."""
from mlmd_log.projections.recent import Recent


def test_use_and_put_keep_an_entry_and_trim_forgets_the_least_recently_used():
    memory = Recent(limit=10)
    for key in range(10):
        memory.put(key, f"v{key}")
    memory.trim()
    assert len(memory) == 10  # (not over the limit: nothing goes)
    assert memory.use(0) == "v0"  # (the oldest, used: now the newest)
    memory.put(3, "v3'")  # (written again: the newest)
    memory.put(10, "v10")
    memory.trim()  # (11 > 10: down to half the limit, the least recently used first)
    assert sorted(memory) == [0, 3, 8, 9, 10]
    assert memory[3] == "v3'"
    assert memory.use(1) is None and 1 not in memory


def test_trim_is_only_asked_for():
    """Links queued but not yet written must stay known until the writer has them: the
    engine trims only where it may (StepWriter.take)."""
    memory = Recent(limit=2)
    for key in range(5):
        memory.put(key, True)
    assert len(memory) == 5
    memory.trim()
    assert list(memory) == [4]
