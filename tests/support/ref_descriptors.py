"""Runs under the reference interpreter: prints ml-metadata's FileDescriptorProtos (base64)."""
import base64
import json
import sys

from google.protobuf import descriptor_pb2
from ml_metadata.proto import metadata_store_pb2, metadata_store_service_pb2

out = {}
for module in (metadata_store_pb2, metadata_store_service_pb2):
    proto = descriptor_pb2.FileDescriptorProto()
    module.DESCRIPTOR.CopyToProto(proto)
    out[proto.name] = base64.b64encode(proto.SerializeToString()).decode()
json.dump(out, sys.stdout)
