"""Every entity a store can list, as JSON of base64 protos: ``dump(store, pb2)`` works on
the official ml-metadata and on mlmd_log alike, so two stores compare as two dumps. Run
as a script under the reference interpreter, it opens a SQLite MLMD store read-only with
the official library and prints its dump."""
import base64
import json
import sys


def b64(messages):
    return [base64.b64encode(m.SerializeToString(deterministic=True)).decode() for m in messages]


def answer(read):
    """A read's messages, or its error's class name (an error is an answer too: MLMD's
    get_contexts_by_artifact raises NotFoundError for an artifact in no context)."""
    try:
        return b64(read())
    except Exception as exc:  # noqa: BLE001 - compared by class name
        return {"$error": type(exc).__name__}


def dump(store, pb2) -> dict:
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
        "events_by_artifact": b64(store.get_events_by_artifact_ids([a.id for a in artifacts])),
        "artifacts_by_context": {str(c.id): b64(store.get_artifacts_by_context(c.id)) for c in contexts},
        "executions_by_context": {str(c.id): b64(store.get_executions_by_context(c.id)) for c in contexts},
        "parents": {str(c.id): b64(store.get_parent_contexts_by_context(c.id)) for c in contexts},
        "children": {str(c.id): b64(store.get_children_contexts_by_context(c.id)) for c in contexts},
        "contexts_by_artifact": {str(a.id): answer(lambda: store.get_contexts_by_artifact(a.id)) for a in artifacts},
        "contexts_by_execution": {str(e.id): answer(lambda: store.get_contexts_by_execution(e.id))
                                  for e in executions},
    }
    if artifacts:
        options = pb2.LineageSubgraphQueryOptions(
            starting_artifacts=pb2.LineageSubgraphQueryOptions.StartingNodes(filter_query="id > 0"),
            max_num_hops=20)
        out["lineage"] = answer(lambda: [store.get_lineage_subgraph(options)])
    return out


def main(path: str) -> None:
    from ml_metadata import metadata_store
    from ml_metadata.proto import metadata_store_pb2

    config = metadata_store_pb2.ConnectionConfig()
    config.sqlite.filename_uri = path
    config.sqlite.connection_mode = metadata_store_pb2.SqliteMetadataSourceConfig.READONLY
    json.dump(dump(metadata_store.MetadataStore(config), metadata_store_pb2), sys.stdout)


if __name__ == "__main__":
    main(sys.argv[1])
