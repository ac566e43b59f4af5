"""mlmd-log: an ML Metadata store built as an event-sourced log with materialized views.

Drop-in for ``ml_metadata``: ``import mlmd_log as mlmd`` then ``mlmd.MetadataStore(config)``.
"""
from typing import Any

from mlmd_log import errors, proto
from mlmd_log.store import ListOptions, MetadataStore, OrderByField, downgrade_schema


def __getattr__(name: str) -> Any:
    """``__version__`` from the installed distribution, looked up when asked for: reading
    package metadata costs every command ~50 ms, and only --version needs it."""
    if name == "__version__":
        from importlib import metadata

        try:
            return metadata.version("mlmd-log")
        except metadata.PackageNotFoundError:  # imported from a source tree that is not installed
            return "0+unknown"
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

__all__ = ["downgrade_schema", "errors", "ListOptions", "MetadataStore", "OrderByField", "proto"]
