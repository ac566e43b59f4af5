"""The package as its users meet it: ``python -m mlmd_log``, its version, and living in one
process with ml-metadata 1.17 (protobuf < 5) without a clash in the descriptor pool."""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

import mlmd_log

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_python_dash_m_prints_the_installed_version():
    run = subprocess.run([sys.executable, "-m", "mlmd_log", "--version"], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == f"mlmd-log {mlmd_log.__version__}"
    assert mlmd_log.__version__ != "0+unknown"  # the suite runs against an installed package


def test_package_ships_its_type_marker():
    assert os.path.exists(os.path.join(os.path.dirname(mlmd_log.__file__), "py.typed"))


# Both import orders: ours first (ml-metadata's generated module must then accept our files), and theirs first.
_BESIDE_ML_METADATA = textwrap.dedent("""
    import sys
    from google.protobuf import struct_pb2
    if sys.argv[1] == "ours-first":
        from mlmd_log.proto import metadata_store_pb2 as ours, metadata_store_service_pb2 as ours_svc
        from ml_metadata.proto import metadata_store_pb2 as theirs, metadata_store_service_pb2 as theirs_svc
    else:
        from ml_metadata.proto import metadata_store_pb2 as theirs, metadata_store_service_pb2 as theirs_svc
        from mlmd_log.proto import metadata_store_pb2 as ours, metadata_store_service_pb2 as ours_svc
    from ml_metadata import metadata_store  # the C++ extension loads beside us too
    import mlmd_log

    struct = struct_pb2.Struct()
    struct.update({"lr": 0.1})
    artifact = ours.Artifact(type_id=3, uri="gs://m", name="model")
    artifact.custom_properties["hp"].struct_value.CopyFrom(struct)
    back = theirs.Artifact.FromString(artifact.SerializeToString())
    assert back.uri == "gs://m" and back.custom_properties["hp"].struct_value["lr"] == 0.1, back
    request = theirs_svc.PutArtifactsRequest(artifacts=[back])
    assert ours_svc.PutArtifactsRequest.FromString(request.SerializeToString()) == request
    print(ours.Artifact is theirs.Artifact)
""")


@pytest.mark.reference
@pytest.mark.parametrize("order", ["ours-first", "theirs-first"])
def test_imports_and_exchanges_messages_beside_ml_metadata(ref_python, order):
    env = dict(os.environ, PYTHONPATH=ROOT)
    run = subprocess.run([ref_python, "-c", _BESIDE_ML_METADATA, order], capture_output=True, text=True, env=env)
    assert run.returncode == 0, run.stderr[-3000:]
    assert run.stdout.strip() == "True"  # same descriptors, so one class per message


# Another ml-metadata version already registered different files under the same names, or the same
# symbols under another file name.
_BESIDE_OTHER_VERSION = textwrap.dedent("""
    import sys
    from google.protobuf import descriptor_pb2, descriptor_pool
    file_name = {"same-file": "ml_metadata/proto/metadata_store.proto", "same-symbols": "old/mlmd.proto"}
    other = descriptor_pb2.FileDescriptorProto(name=file_name[sys.argv[1]], package="ml_metadata")
    other.message_type.add(name="Artifact").field.add(name="id", number=1, type=3, label=1)
    descriptor_pool.Default().AddSerializedFile(other.SerializeToString())

    import mlmd_log
    from mlmd_log.proto import metadata_store_pb2 as pb
    from mlmd_log.schemas import runtime
    assert runtime.POOL is not descriptor_pool.Default()
    store = mlmd_log.MetadataStore(pb.ConnectionConfig(fake_database={}))
    type_id = store.put_artifact_type(pb.ArtifactType(name="Model", base_type=pb.ArtifactType.MODEL))
    artifact = pb.Artifact(type_id=type_id, uri="gs://m")
    artifact.custom_properties["hp"].struct_value.update({"lr": 0.1})
    [artifact_id] = store.put_artifacts([artifact])
    [back] = store.get_artifacts_by_id([artifact_id])
    assert back.custom_properties["hp"].struct_value["lr"] == 0.1
    assert store.get_artifact_type("Model").base_type == pb.ArtifactType.MODEL
    step = pb.Event.Path.Step(key="k")  # nested classes are there on every runtime
    print("private pool", step.key)
""")

# upb: the C runtime of every protobuf wheel since 4.21; python: the pure-Python one, used where no
# wheel fits (PROTOCOL_BUFFERS_PYTHON_IMPLEMENTATION=python, or a platform without one).
RUNTIMES = ["upb", "python"]


@pytest.mark.parametrize("runtime", RUNTIMES)
@pytest.mark.parametrize("clash", ["same-file", "same-symbols"])
def test_other_files_under_ml_metadata_names_send_ours_to_a_private_pool(runtime, clash):
    env = dict(os.environ, PROTOCOL_BUFFERS_PYTHON_IMPLEMENTATION=runtime)
    run = subprocess.run([sys.executable, "-c", _BESIDE_OTHER_VERSION, clash], capture_output=True, text=True,
                         env=env)
    assert run.returncode == 0, run.stderr[-3000:]
    assert run.stdout.strip() == "private pool k"


def test_the_store_api_suite_passes_on_the_pure_python_protobuf_runtime():
    """Base types live in enum-value options, which the pure-Python runtime parses before our extension
    exists; this runs the API tests (types, properties, filters, lineage) on that runtime."""
    env = dict(os.environ, PROTOCOL_BUFFERS_PYTHON_IMPLEMENTATION="python")
    check = "from google.protobuf.internal import api_implementation as a; print(a.Type())"
    assert subprocess.run([sys.executable, "-c", check], capture_output=True, text=True, env=env
                          ).stdout.strip() == "python"
    run = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                          "tests/test_store_api.py", "tests/test_lineage.py", "tests/test_protos.py"],
                         capture_output=True, text=True, env=env, cwd=ROOT, timeout=600)
    assert run.returncode == 0, run.stdout[-3000:]
    assert " passed" in run.stdout and "failed" not in run.stdout and "skipped" not in run.stdout, run.stdout[-500:]
