"""mlmd-log: an ML Metadata store built as an event-sourced log with materialized views.

Drop-in for ``ml_metadata``: ``import mlmd_log as mlmd`` then ``mlmd.MetadataStore(config)``.
"""
from importlib import metadata as _metadata

from mlmd_log import errors, proto
from mlmd_log.store import ListOptions, MetadataStore, OrderByField, downgrade_schema

try:
    __version__ = _metadata.version("mlmd-log")
except _metadata.PackageNotFoundError:  # imported from a source tree that is not installed
    __version__ = "0+unknown"
__all__ = ["downgrade_schema", "errors", "ListOptions", "MetadataStore", "OrderByField", "proto"]
