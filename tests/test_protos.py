"""Our .proto files are wire-compatible with ml-metadata 1.17, and the committed
generated modules are what the sources generate."""
from __future__ import annotations

import base64
import json
import os
import subprocess
import sys

import pytest
from google.protobuf import descriptor_pb2

from mlmd_log.schemas import metadata_store_pb2, metadata_store_service_pb2
from mlmd_log.schemas._descriptors import FILES

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HERE = os.path.dirname(os.path.abspath(__file__))


def _ours(module) -> descriptor_pb2.FileDescriptorProto:
    # the shipped bytes, not CopyToProto: protobuf 4.21's drops reserved ranges
    return descriptor_pb2.FileDescriptorProto.FromString(FILES[module.DESCRIPTOR.name])


def _normalise(proto: descriptor_pb2.FileDescriptorProto) -> descriptor_pb2.FileDescriptorProto:
    """Drops what may differ without changing the wire: file names and json names."""
    out = descriptor_pb2.FileDescriptorProto()
    out.CopyFrom(proto)
    out.ClearField("name")
    out.ClearField("dependency")
    out.ClearField("source_code_info")
    out.ClearField("options")

    def strip(message):
        for field in message.field:
            field.ClearField("json_name")
        for nested in message.nested_type:
            strip(nested)
    for message in out.message_type:
        strip(message)
    return out


def test_generated_modules_are_fresh():
    pytest.importorskip("grpc_tools", reason="the protoc extra (grpcio-tools) is not installed")
    run = subprocess.run([sys.executable, os.path.join(ROOT, "scripts", "gen_protos.py"), "--check"],
                         capture_output=True, text=True)
    assert run.returncode == 0, run.stdout + run.stderr


def test_service_has_all_52_rpcs():
    service = metadata_store_service_pb2.DESCRIPTOR.services_by_name["MetadataStoreService"]
    assert service.full_name == "ml_metadata.MetadataStoreService"
    assert len(service.methods) == 52


@pytest.mark.reference
def test_descriptors_match_ml_metadata(ref_python):
    run = subprocess.run([ref_python, os.path.join(HERE, "support", "ref_descriptors.py")], capture_output=True, text=True,
                         check=True)
    theirs = json.loads(run.stdout)
    pairs = {"ml_metadata/proto/metadata_store.proto": metadata_store_pb2,
             "ml_metadata/proto/metadata_store_service.proto": metadata_store_service_pb2}
    for name, module in pairs.items():
        reference = descriptor_pb2.FileDescriptorProto.FromString(base64.b64decode(theirs[name]))
        ours = _ours(module)
        assert ours.package == reference.package == "ml_metadata"
        assert [m.name for m in ours.message_type] == [m.name for m in reference.message_type]
        assert _normalise(ours) == _normalise(reference), f"{name} differs from ml-metadata's"
