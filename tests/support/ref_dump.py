"""Runs under the reference interpreter: opens a SQLite MLMD store read-only with the
official ml-metadata and prints every entity it can list, as JSON of base64 protos."""
import base64
import json
import sys

from ml_metadata import metadata_store
from ml_metadata.proto import metadata_store_pb2


def b64(messages):
    return [base64.b64encode(m.SerializeToString(deterministic=True)).decode() for m in messages]


def main(path: str) -> None:
    config = metadata_store_pb2.ConnectionConfig()
    config.sqlite.filename_uri = path
    config.sqlite.connection_mode = metadata_store_pb2.SqliteMetadataSourceConfig.READONLY
    store = metadata_store.MetadataStore(config)
    artifacts = store.get_artifacts()
    executions = store.get_executions()
    contexts = store.get_contexts()
    out = {
        "artifact_types": b64(store.get_artifact_types()),
        "execution_types": b64(store.get_execution_types()),
        "context_types": b64(store.get_context_types()),
        "artifacts": b64(artifacts),
        "executions": b64(executions),
        "contexts": b64(contexts),
        "events": b64(store.get_events_by_execution_ids([e.id for e in executions])),
        "artifacts_by_context": {str(c.id): b64(store.get_artifacts_by_context(c.id)) for c in contexts},
        "executions_by_context": {str(c.id): b64(store.get_executions_by_context(c.id)) for c in contexts},
        "parents": {str(c.id): b64(store.get_parent_contexts_by_context(c.id)) for c in contexts},
    }
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main(sys.argv[1])
