"""Builds the message classes of our .proto files at import time, on any protobuf from 4.25 to 7.

protoc's generated modules refuse a runtime older than the protoc that wrote them, so we ship the
serialized FileDescriptorProtos (``_descriptors.py``, written by ``scripts/gen_protos.py``) and build
classes with the builder every generated module of those runtimes calls.

Our MLMD files carry ml-metadata's file names and contents, so in the default descriptor pool they are
the same files as ml-metadata 1.17's: importing both, in either order, yields one ``ml_metadata.Artifact``
class, and well-known types (``struct_pb2.Struct``, ``any_pb2.Any``) mix freely. When the default pool
already holds different files under those names or symbols (another ml-metadata version), ours go into
a private pool instead: no clash, same wire, but their Struct/Any fields then take
only that pool's well-known-type classes.
"""
from __future__ import annotations

import functools
import importlib
from typing import Any, Dict, MutableMapping

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from google.protobuf.internal import builder, enum_type_wrapper

from mlmd_log.schemas._descriptors import FILES


def _import_well_known_types() -> None:
    """Puts the google/protobuf/*.proto files ours import into the default pool."""
    for serialized in FILES.values():
        for dependency in descriptor_pb2.FileDescriptorProto.FromString(serialized).dependency:
            if dependency.startswith("google/protobuf/"):
                importlib.import_module(dependency[:-len(".proto")].replace("/", ".") + "_pb2")


def _add_all(pool: descriptor_pool.DescriptorPool) -> None:
    for serialized in FILES.values():
        pool.AddSerializedFile(serialized)


def _private_pool() -> descriptor_pool.DescriptorPool:
    pool = descriptor_pool.DescriptorPool()
    added = set()

    def add(name: str) -> None:
        if name in added:
            return
        serialized = FILES.get(name) or descriptor_pool.Default().FindFileByName(name).serialized_pb
        for dependency in descriptor_pb2.FileDescriptorProto.FromString(serialized).dependency:
            add(dependency)
        pool.AddSerializedFile(serialized)
        added.add(name)
    for name in FILES:
        add(name)
    return pool


def _holds_other_contents(pool: descriptor_pool.DescriptorPool) -> bool:
    """Whether the pool has a file of one of our names with other contents, or one of our symbols in
    another file. The C++ runtime refuses to add ours then; the pure-Python one adds it and fails later."""
    for name, serialized in FILES.items():
        ours = descriptor_pb2.FileDescriptorProto.FromString(serialized)
        try:
            existing = pool.FindFileByName(name)
        except KeyError:
            existing = None
        if existing is not None:
            if descriptor_pb2.FileDescriptorProto.FromString(existing.serialized_pb) != ours:
                return True
            continue
        top_level = [*ours.message_type, *ours.enum_type, *ours.extension, *ours.service]
        for symbol in (f"{ours.package}.{d.name}" for d in top_level):
            try:
                pool.FindFileContainingSymbol(symbol)
            except KeyError:
                continue
            return True
    return False


def _choose_pool() -> descriptor_pool.DescriptorPool:
    _import_well_known_types()
    default = descriptor_pool.Default()
    if _holds_other_contents(default):
        return _private_pool()
    try:
        _add_all(default)
    except (TypeError, KeyError):  # a symbol of ours is already there, in a file of another name
        return _private_pool()
    return default



POOL = _choose_pool()


def build(file_name: str, module_name: str, namespace: MutableMapping[str, Any]) -> Any:
    """Fills a ``*_pb2`` module's namespace as protoc's module would; returns its FileDescriptor."""
    file = POOL.FindFileByName(file_name)
    names: Dict[str, Any] = {}
    builder.BuildMessageAndEnumDescriptors(file, names)
    if POOL is descriptor_pool.Default():
        builder.BuildTopDescriptorsAndMessages(file, module_name, names)
    else:
        _build_private_top_level(file, names)
    namespace.update(names)
    return file


def _build_private_top_level(file: Any, names: Dict[str, Any]) -> None:
    """What protoc's builder does, minus registering the classes in the default symbol database: the
    pure-Python runtime checks that against the default pool, where our symbols name other files."""
    for name, enum in file.enum_types_by_name.items():
        names["_" + name.upper()] = enum
        names[name] = enum_type_wrapper.EnumTypeWrapper(enum)
        names.update((value.name, value.number) for value in enum.values)
    for name, extension in file.extensions_by_name.items():
        names[name.upper() + "_FIELD_NUMBER"] = extension.number
        names[name] = extension
    names.update(("_" + name.upper(), service) for name, service in file.services_by_name.items())
    for name, message in file.message_types_by_name.items():
        names[name] = _class_with_nested_classes(message)


def _class_with_nested_classes(message_descriptor: Any) -> Any:
    """The message class, with its nested message classes as attributes (the pure-Python runtime's
    message factory does not set them)."""
    cls = message_class(message_descriptor)
    for nested in message_descriptor.nested_types:
        if not hasattr(cls, nested.name):
            setattr(cls, nested.name, _class_with_nested_classes(nested))
    return cls


def is_repeated(field: Any) -> bool:
    """FieldDescriptor.is_repeated where the runtime has it (protobuf >= 6), else its label."""
    flag = getattr(field, "is_repeated", None)
    return bool(flag) if flag is not None else field.label == field.LABEL_REPEATED


def option_extension(options: Any, extension: Any) -> Any:
    """``options.Extensions[extension]``, also with our files in the private pool, where a descriptor's
    options are default-pool messages but our extension extends the private pool's options message; and
    with the pure-Python runtime, which parsed the options before the extension existed (it sits in the
    unknown fields until the bytes are parsed again)."""
    if options.DESCRIPTOR is not extension.containing_type or not options.HasExtension(extension):
        options = message_class(extension.containing_type).FromString(options.SerializeToString())
    return options.Extensions[extension]


@functools.lru_cache(maxsize=None)
def message_class(message_descriptor: Any) -> Any:
    """The class of a message descriptor of any pool, one per descriptor."""
    get_class = getattr(message_factory, "GetMessageClass", None)  # protobuf >= 4.22
    if get_class is not None:
        return get_class(message_descriptor)
    return message_factory.MessageFactory(message_descriptor.file.pool).GetPrototype(message_descriptor)
