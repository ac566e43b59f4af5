"""mlmd-log: an ML Metadata store built as an event-sourced log with materialized views.

Drop-in for ``ml_metadata``: ``import mlmd_log as mlmd`` then ``mlmd.MetadataStore(config)``.
"""
from mlmd_log import errors, proto
from mlmd_log.store import ListOptions, MetadataStore, OrderByField, downgrade_schema

__version__ = "0.1.0"
__all__ = ["downgrade_schema", "errors", "ListOptions", "MetadataStore", "OrderByField", "proto"]
