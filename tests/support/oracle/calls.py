"""Seeded random MLMD call sequences, generated interactively against a live store.

The generator drives a real in-memory store (the official ``ml_metadata`` by
default, run under its venv's interpreter): before each call it peeks at the
store's current state (unrecorded reads), picks an action with seeded
randomness, builds concrete arguments from that state (existing ids, names,
type properties...), executes it and records the call.  Ids in later calls are
therefore concrete numbers taken from earlier results; replaying the recorded
calls on a fresh store of a conforming implementation must give the same ids.

    python tests/support/oracle/calls.py --seed 1 --n 300 --out calls.json [--lib ml_metadata]

The output is ``{"seed", "lib", "calls": [...], "results": [...]}``; the results
are what the driving store returned, in runner.py's encoding.

Deliberately malformed calls (conflicting types, unknown ids, name collisions,
cycles, ...) are mixed in at a low rate so error classes are compared too.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import sys
from typing import Any, Optional

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import runner  # noqa: E402  (sibling module; works under both interpreters)

UNKNOWN_ID = 987654
PROP_NAMES = ["p_int", "p_str", "alpha", "beta", "gamma", "delta"]
CUSTOM_NAMES = ["c1", "c2", "note"]
STRINGS = ["x", "y", "it's", "ünïcode", "", "long " * 5, "a%b_c"]
DOUBLES = [0.5, -1.25, 3.0, 2.5e10, 1e-3]
URIS = [f"/data/u{i}" for i in range(6)]
VERSIONS = ["v1", "v2", "v3"]
NAME_POOL = {
    "artifact": [f"a{i}" for i in range(15)],
    "execution": [f"e{i}" for i in range(10)],
    "context": [f"ctx{i}" for i in range(12)],
}
EXT_POOL = {kind: [f"{kind[0]}-ext{i}" for i in range(10)] for kind in NAME_POOL}
TYPE_EXT_POOL = {kind: [f"{kind[0]}t-ext{i}" for i in range(4)] for kind in NAME_POOL}

KIND = {
    "artifact": dict(type="ArtifactType", node="Artifact", Title="Artifact",
                     put_type="put_artifact_type", put_nodes="put_artifacts",
                     get_types="get_artifact_types", get_nodes="get_artifacts",
                     base_types=["UNSET", "DATASET", "MODEL", "METRICS", "STATISTICS"]),
    "execution": dict(type="ExecutionType", node="Execution", Title="Execution",
                      put_type="put_execution_type", put_nodes="put_executions",
                      get_types="get_execution_types", get_nodes="get_executions",
                      base_types=["UNSET", "TRAIN", "TRANSFORM", "PROCESS", "EVALUATE", "DEPLOY"]),
    "context": dict(type="ContextType", node="Context", Title="Context",
                    put_type="put_context_type", put_nodes="put_contexts",
                    get_types="get_context_types", get_nodes="get_contexts",
                    base_types=["UNSET"]),
}
KINDS = list(KIND)


class Generator:
    """Builds and executes one seeded call sequence."""

    def __init__(self, seed: int, lib_name: str = "ml_metadata", query_layer: bool = True):
        # query_layer=False leaves out filter queries and lineage reads (the query layer's features).
        self.query_layer = query_layer
        self.rng = random.Random(seed)
        self.seed = seed
        self.lib = runner.load_library(lib_name)
        self.pb = self.lib.pb2
        self.session = runner.Session(self.lib)
        self.store = self.session.store
        self.calls: list = []
        self.results: list = []
        self.type_counter = 0
        self.parent_links: list = []  # (child_id, parent_id) accepted so far
        self.sent_events: list = []  # events sent in successful put_events

    # ------------------------------------------------------------ plumbing
    def emit(self, method: str, *args: Any, **kwargs: Any):
        call = {"method": method, "args": runner.encode_arg(list(args)),
                "kwargs": runner.encode_arg(kwargs)}
        value, error = self.session.call_raw(call)
        self.calls.append(call)
        self.results.append(runner.encode_error(error) if error is not None
                            else runner.encode_result(value))
        return value, error

    def peek(self) -> None:
        """Current state of the driving store (unrecorded; reads change nothing)."""
        s = self.store
        self.types = {k: list(getattr(s, KIND[k]["get_types"])()) for k in KINDS}
        self.nodes = {k: list(getattr(s, KIND[k]["get_nodes"])()) for k in KINDS}
        exec_ids = [e.id for e in self.nodes["execution"]]
        self.events = list(s.get_events_by_execution_ids(exec_ids)) if exec_ids else []

    def chance(self, p: float) -> bool:
        return self.rng.random() < p

    def pick(self, seq):
        return self.rng.choice(seq)

    def sample(self, seq, lo: int, hi: int) -> list:
        return self.rng.sample(list(seq), min(len(seq), self.rng.randint(lo, hi)))

    @staticmethod
    def stripped(message):
        """A copy without the wall-clock fields (never send them back)."""
        copy = type(message)()
        copy.CopyFrom(message)
        runner.clear_timestamps(copy)
        return copy

    # ------------------------------------------------------------ values
    def value_for(self, value, ptype: int) -> None:
        P = self.pb
        if ptype == P.INT:
            value.int_value = self.rng.randint(-5, 120)
        elif ptype == P.DOUBLE:
            value.double_value = self.pick(DOUBLES)
        elif ptype == P.STRING:
            value.string_value = self.pick(STRINGS)
        elif ptype == P.BOOLEAN:
            value.bool_value = self.chance(0.5)
        elif ptype == P.STRUCT:
            value.struct_value.update({"k": self.rng.randint(0, 9), "l": ["a", True, None]})
        elif ptype == P.PROTO:
            value.proto_value.Pack(P.Artifact(name=self.pick(STRINGS), uri="/proto"))

    def wrong_value_for(self, value, ptype: int) -> None:
        P = self.pb
        others = [t for t in (P.INT, P.DOUBLE, P.STRING, P.BOOLEAN) if t != ptype]
        self.value_for(value, self.pick(others))

    def random_ptype(self) -> int:
        P = self.pb
        return self.pick([P.INT, P.INT, P.STRING, P.STRING, P.DOUBLE, P.BOOLEAN, P.STRUCT, P.PROTO])

    def fill_custom(self, node) -> None:
        P = self.pb
        for name in self.sample(CUSTOM_NAMES, 0, 2):
            self.value_for(node.custom_properties[name],
                           self.pick([P.INT, P.STRING, P.DOUBLE, P.BOOLEAN, P.STRUCT]))

    # ------------------------------------------------------------ types
    def new_type(self, kind: str):
        spec = KIND[kind]
        t = getattr(self.pb, spec["type"])()
        self.type_counter += 1
        t.name = f"{spec['Title']}Type{self.type_counter}"
        if self.chance(0.25):
            t.version = self.pick(VERSIONS)
        if self.chance(0.3):
            t.description = f"desc {self.type_counter}"
        if self.chance(0.2):
            t.external_id = self.pick(TYPE_EXT_POOL[kind])
        if self.chance(0.3) and len(spec["base_types"]) > 1:
            t.base_type = getattr(type(t), self.pick(spec["base_types"][1:]))
        for name in self.sample(PROP_NAMES, 0, 4):
            t.properties[name] = self.random_ptype()
        return t

    def act_put_type_new(self, kind: Optional[str] = None):
        kind = kind or self.pick(KINDS)
        self.emit(KIND[kind]["put_type"], self.new_type(kind))

    def act_put_type_again(self):
        kind = self.pick([k for k in KINDS if self.types[k]] or KINDS)
        if not self.types[kind]:
            return self.act_put_type_new(kind)
        t = self.stripped(self.pick(self.types[kind]))
        kwargs = {}
        variant = self.pick(["same", "same_no_id", "add", "add", "omit", "omit", "conflict",
                             "new_version", "change_desc"])
        if variant == "same_no_id":
            t.ClearField("id")
        elif variant == "add":
            missing = [n for n in PROP_NAMES + ["epsilon"] if n not in t.properties]
            if missing:
                t.properties[self.pick(missing)] = self.random_ptype()
            kwargs["can_add_fields"] = self.chance(0.7)
        elif variant == "omit" and t.properties:
            del t.properties[self.pick(sorted(t.properties))]
            kwargs["can_omit_fields"] = self.chance(0.7)
        elif variant == "conflict" and t.properties:
            name = self.pick(sorted(t.properties))
            P = self.pb
            t.properties[name] = self.pick([p for p in (P.INT, P.STRING, P.DOUBLE) if p != t.properties[name]])
            kwargs["can_add_fields"] = self.chance(0.5)
        elif variant == "new_version":
            t.ClearField("id")
            t.version = self.pick(VERSIONS + ["v9"])
        elif variant == "change_desc":
            t.description = "changed"
        if self.chance(0.2):
            kwargs["can_add_fields"] = True
            kwargs["can_omit_fields"] = True
        self.emit(KIND[kind]["put_type"], t, **kwargs)

    def act_put_type_invalid(self):
        kind = self.pick(KINDS)
        t = self.new_type(kind)
        variant = self.pick(["no_name", "unknown_ptype", "unknown_id"])
        if variant == "no_name":
            t.ClearField("name")
        elif variant == "unknown_ptype":
            t.properties["bad"] = self.pb.UNKNOWN
        else:
            t.id = UNKNOWN_ID
        self.emit(KIND[kind]["put_type"], t)

    # ------------------------------------------------------------ nodes
    def new_node(self, kind: str, type_proto=None, with_name: Optional[bool] = None):
        spec = KIND[kind]
        node = getattr(self.pb, spec["node"])()
        if type_proto is None:
            type_proto = self.pick(self.types[kind])
        node.type_id = type_proto.id
        if with_name is None:
            with_name = kind == "context" or self.chance(0.6)
        if with_name:
            # pooled names collide now and then (AlreadyExists); fresh ones do not
            node.name = self.pick(NAME_POOL[kind]) if self.chance(0.45) \
                else f"{kind[0]}-{len(self.calls)}-{self.rng.randint(0, 9)}"
        if self.chance(0.25):
            node.external_id = self.pick(EXT_POOL[kind])
        for name, ptype in sorted(type_proto.properties.items()):
            if self.chance(0.6):
                self.value_for(node.properties[name], ptype)
        self.fill_custom(node)
        if kind == "artifact":
            if self.chance(0.8):
                node.uri = self.pick(URIS)
            if self.chance(0.6):
                node.state = self.pick([1, 2, 2, 3, 4, 5, 6])
        elif kind == "execution" and self.chance(0.6):
            node.last_known_state = self.pick([1, 2, 3, 3, 4, 5, 6])
        return node

    def changed_node(self, kind: str, node):
        """An update of a stored node: same id, some fields changed."""
        node = self.stripped(node)
        types = {t.id: t for t in self.types[kind]}
        t = types.get(node.type_id)
        if t is not None and t.properties and self.chance(0.6):
            name = self.pick(sorted(t.properties))
            self.value_for(node.properties[name], t.properties[name])
        if self.chance(0.4):
            self.fill_custom(node)
        if self.chance(0.2) and node.custom_properties:
            del node.custom_properties[self.pick(sorted(node.custom_properties))]
        if kind == "artifact":
            if self.chance(0.4):
                node.uri = self.pick(URIS)
            if self.chance(0.4):
                node.state = self.pick([2, 3, 4, 5])
        elif kind == "execution" and self.chance(0.5):
            node.last_known_state = self.pick([2, 3, 4, 5, 6])
        if self.chance(0.1):
            node.external_id = self.pick(EXT_POOL[kind])
        if self.chance(0.3):
            node.ClearField("type")
        return node

    def act_put_nodes_new(self, kind: Optional[str] = None):
        kind = kind or self.pick(KINDS)
        if not self.types[kind]:
            return self.act_put_type_new(kind)
        nodes = [self.new_node(kind) for _ in range(self.rng.randint(1, 3))]
        kwargs = {"field_mask_paths": ["uri"]} if self.chance(0.1) else {}
        self.emit(KIND[kind]["put_nodes"], nodes, **kwargs)

    def act_put_nodes_update(self):
        kind = self.pick([k for k in KINDS if self.nodes[k]] or KINDS)
        if not self.nodes[kind]:
            return self.act_put_nodes_new(kind)
        nodes = [self.changed_node(kind, n) for n in self.sample(self.nodes[kind], 1, 2)]
        if self.chance(0.2) and self.types[kind]:
            nodes.append(self.new_node(kind))
        kwargs = {}
        if self.chance(0.35):
            paths = ["properties", "custom_properties", "external_id", "name"]
            paths += [f"properties.{p}" for p in PROP_NAMES[:3]]
            paths += [f"custom_properties.{c}" for c in CUSTOM_NAMES[:2]]
            paths += {"artifact": ["uri", "state"], "execution": ["last_known_state"],
                      "context": []}[kind]
            kwargs["field_mask_paths"] = self.sample(paths, 1, 3)
        self.emit(KIND[kind]["put_nodes"], nodes, **kwargs)

    def act_put_nodes_invalid(self):
        kind = self.pick([k for k in KINDS if self.types[k]] or KINDS)
        if not self.types[kind]:
            return self.act_put_type_new(kind)
        node = self.new_node(kind)
        t = {t.id: t for t in self.types[kind]}[node.type_id]
        variant = self.pick(["unknown_type", "no_type", "unknown_prop", "wrong_ptype",
                             "no_name", "bad_update_id", "change_type", "dup_name"])
        if variant == "unknown_type":
            node.type_id = UNKNOWN_ID
        elif variant == "no_type":
            node.ClearField("type_id")
        elif variant == "unknown_prop":
            self.value_for(node.properties["not_in_type"], self.pb.INT)
        elif variant == "wrong_ptype" and t.properties:
            name = self.pick(sorted(t.properties))
            self.wrong_value_for(node.properties[name], t.properties[name])
        elif variant == "no_name":
            node.ClearField("name")
        elif variant == "bad_update_id":
            node.id = UNKNOWN_ID
        elif variant == "change_type" and self.nodes[kind] and len(self.types[kind]) > 1:
            node = self.stripped(self.pick(self.nodes[kind]))
            node.type_id = self.pick([x.id for x in self.types[kind] if x.id != node.type_id])
        elif variant == "dup_name" and any(n.name for n in self.nodes[kind]):
            old = self.pick([n for n in self.nodes[kind] if n.name])
            node = self.new_node(kind, {t.id: t for t in self.types[kind]}[old.type_id])
            node.name = old.name
        self.emit(KIND[kind]["put_nodes"], [node])

    # ------------------------------------------------------------ edges
    def new_event(self, artifact_id=None, execution_id=None):
        E = self.pb.Event
        event = E(type=self.pick([E.INPUT, E.OUTPUT, E.INPUT, E.OUTPUT, E.DECLARED_INPUT,
                                  E.DECLARED_OUTPUT, E.INTERNAL_OUTPUT, E.PENDING_OUTPUT]))
        if artifact_id is not None:
            event.artifact_id = artifact_id
        if execution_id is not None:
            event.execution_id = execution_id
        if self.chance(0.3):
            for _ in range(self.rng.randint(1, 2)):
                step = event.path.steps.add()
                if self.chance(0.5):
                    step.index = self.rng.randint(0, 3)
                else:
                    step.key = self.pick(["in", "out", "model"])
        return event

    def act_put_events(self):
        arts, execs = self.nodes["artifact"], self.nodes["execution"]
        if not arts or not execs:
            return self.act_put_nodes_new(self.pick(["artifact", "execution"]))
        events = []
        for _ in range(self.rng.randint(1, 3)):
            r = self.rng.random()
            if r < 0.12 and self.events:
                events.append(self.stripped(self.pick(self.events)))  # duplicate
            elif r < 0.2:
                events.append(self.new_event(UNKNOWN_ID, self.pick(execs).id))
            elif r < 0.25:
                events.append(self.new_event(self.pick(arts).id, UNKNOWN_ID))
            elif r < 0.28:
                events.append(self.new_event(self.pick(arts).id, None))
            else:
                events.append(self.new_event(self.pick(arts).id, self.pick(execs).id))
        if self.chance(0.05):
            events[0].ClearField("type")
        self.emit("put_events", events)

    def context_for_write(self):
        """A new context (maybe a colliding name) or a stored one with its id."""
        if self.nodes["context"] and self.chance(0.4):
            return self.stripped(self.pick(self.nodes["context"]))
        return self.new_node("context")

    def artifact_for_write(self, reuse_by_external_id: bool):
        if self.nodes["artifact"] and self.chance(0.3):
            return self.changed_node("artifact", self.pick(self.nodes["artifact"]))
        art = self.new_node("artifact")
        if reuse_by_external_id and self.chance(0.6):
            art.external_id = self.pick(EXT_POOL["artifact"])
        return art

    def act_put_execution(self):
        if not self.types["execution"] or not self.types["artifact"]:
            return self.act_put_type_new(self.pick(["execution", "artifact"]))
        reuse_art = self.chance(0.3)
        if self.nodes["execution"] and self.chance(0.3):
            execution = self.changed_node("execution", self.pick(self.nodes["execution"]))
        else:
            execution = self.new_node("execution")
        pairs = []
        for _ in range(self.rng.randint(0, 3)):
            art = self.artifact_for_write(reuse_art)
            r = self.rng.random()
            if r < 0.15:
                pairs.append([art])
            elif r < 0.25:
                pairs.append([art, None])
            else:
                event = self.new_event()
                if self.chance(0.05):
                    event.execution_id = UNKNOWN_ID
                pairs.append([art, event])
        contexts = []
        if self.types["context"]:
            contexts = [self.context_for_write() for _ in range(self.rng.randint(0, 2))]
        kwargs = {}
        if self.chance(0.35):
            kwargs["reuse_context_if_already_exist"] = True
        if reuse_art:
            kwargs["reuse_artifact_if_already_exist_by_external_id"] = True
        if self.chance(0.1):
            kwargs["force_reuse_context"] = True
        if self.chance(0.1):
            kwargs["force_update_time"] = True
        self.emit("put_execution", execution, pairs, contexts, **kwargs)

    def act_put_lineage_subgraph(self):
        if not self.types["execution"] or not self.types["artifact"]:
            return self.act_put_type_new(self.pick(["execution", "artifact"]))
        reuse_art = self.chance(0.3)
        executions = []
        for _ in range(self.rng.randint(0, 2)):
            if self.nodes["execution"] and self.chance(0.25):
                executions.append(self.changed_node("execution", self.pick(self.nodes["execution"])))
            else:
                executions.append(self.new_node("execution"))
        artifacts = [self.artifact_for_write(reuse_art) for _ in range(self.rng.randint(0, 3))]
        contexts = []
        if self.types["context"]:
            contexts = [self.context_for_write() for _ in range(self.rng.randint(0, 2))]
        edges = []
        for _ in range(self.rng.randint(0, 3)):
            r = self.rng.random()
            event = self.new_event()
            if r < 0.07:
                edges.append([len(executions) + 1, 0, event])  # out of range
            elif r < 0.2 and self.nodes["execution"] and artifacts:
                event.execution_id = self.pick(self.nodes["execution"]).id
                edges.append([None, self.rng.randrange(len(artifacts)), event])
            elif r < 0.3 and self.nodes["artifact"] and executions:
                event.artifact_id = self.pick(self.nodes["artifact"]).id
                edges.append([self.rng.randrange(len(executions)), None, event])
            elif executions and artifacts:
                edges.append([self.rng.randrange(len(executions)),
                              self.rng.randrange(len(artifacts)), event])
        kwargs = {}
        if self.chance(0.35):
            kwargs["reuse_context_if_already_exist"] = True
        if reuse_art:
            kwargs["reuse_artifact_if_already_exist_by_external_id"] = True
        self.emit("put_lineage_subgraph", executions, artifacts, contexts, edges, **kwargs)

    def some_id(self, kind: str, unknown: float = 0.05) -> int:
        if not self.nodes[kind] or self.chance(unknown):
            return UNKNOWN_ID
        return self.pick(self.nodes[kind]).id

    def act_put_attributions_and_associations(self):
        if not self.nodes["context"]:
            return self.act_put_nodes_new("context")
        P = self.pb
        attributions = [P.Attribution(artifact_id=self.some_id("artifact"),
                                      context_id=self.some_id("context"))
                        for _ in range(self.rng.randint(0, 3)) if self.nodes["artifact"]]
        associations = [P.Association(execution_id=self.some_id("execution"),
                                      context_id=self.some_id("context"))
                        for _ in range(self.rng.randint(0, 3)) if self.nodes["execution"]]
        self.emit("put_attributions_and_associations", attributions, associations)

    def act_put_parent_contexts(self):
        ctxs = self.nodes["context"]
        if len(ctxs) < 2:
            return self.act_put_nodes_new("context")
        links = []
        for _ in range(self.rng.randint(1, 2)):
            r = self.rng.random()
            if r < 0.05:
                c = self.pick(ctxs).id
                links.append((c, c))  # self cycle
            elif r < 0.13 and self.parent_links:
                child, parent = self.pick(self.parent_links)
                links.append((parent, child))  # 2-cycle
            elif r < 0.2 and len(self.parent_links) >= 2:
                # try to close a longer chain: parent of parent
                child, parent = self.pick(self.parent_links)
                grand = [p for c, p in self.parent_links if c == parent]
                links.append((grand[0], child) if grand else (parent, child))
            elif r < 0.27 and self.parent_links:
                links.append(self.pick(self.parent_links))  # duplicate
            elif r < 0.3:
                links.append((self.pick(ctxs).id, UNKNOWN_ID))
            else:
                a, b = self.rng.sample([c.id for c in ctxs], 2)
                links.append((a, b))
        msgs = [self.pb.ParentContext(child_id=c, parent_id=p) for c, p in links]
        value, error = self.emit("put_parent_contexts", msgs)
        if error is None:
            self.parent_links.extend(l for l in links if l not in self.parent_links)

    # ------------------------------------------------------------ reads
    def id_list(self, kind: str) -> list:
        ids = [n.id for n in self.sample(self.nodes[kind], 0, 4)]
        if self.chance(0.2):
            ids.append(UNKNOWN_ID)
        if ids and self.chance(0.1):
            ids.append(ids[0])
        return ids

    def type_ref(self, kind: str):
        """(type name, version or None) of a stored type, sometimes unknown."""
        if not self.types[kind] or self.chance(0.08):
            return "NoSuchType", None
        t = self.pick(self.types[kind])
        return t.name, (t.version if t.HasField("version") else None)

    def filter_query(self, kind: str) -> Optional[str]:
        options = ["id > 3", "name LIKE 'a%'", "create_time_since_epoch > 0"]
        if self.types[kind]:
            options.append(f"type = '{self.pick(self.types[kind]).name}'")
        named = [n.name for n in self.nodes[kind] if n.name]
        if named:
            options.append(f"name = '{self.pick(named)}'")
        options.append("properties.p_int.int_value > 10")
        options.append("custom_properties.c1.string_value = 'x'")
        if kind == "artifact":
            options += [f"uri = '{self.pick(URIS)}'", "state = LIVE"]
        if kind == "execution":
            options.append("last_known_state = COMPLETE")
        if kind != "context" and self.nodes["context"]:
            options.append(f"contexts_a.name = '{self.pick(self.nodes['context']).name}'")
        return self.pick(options)

    def list_opts(self, kind: str, allow_filter: bool = True):
        if self.chance(0.25):
            return None
        return runner.list_options(
            limit=self.pick([None, None, 1, 2, 3, 5, 150]),
            order_by=self.pick([None, "ID", "ID", "CREATE_TIME"]),
            is_asc=self.chance(0.5),
            filter_query=(self.filter_query(kind) if allow_filter and self.query_layer and self.chance(0.35)
                          else None),
        )

    def act_read(self):
        kind = self.pick(KINDS)
        K = KIND[kind]["Title"].lower()
        r = self.pick(range(22))
        if r == 0:
            self.emit(f"get_{K}s_by_id", self.id_list(kind))
        elif r == 1:
            name, version = self.type_ref(kind)
            self.emit(f"get_{K}s_by_type", name, **({"type_version": version} if version else {}))
        elif r == 2:
            name, version = self.type_ref(kind)
            node_name = self.pick(NAME_POOL[kind])
            self.emit(f"get_{K}_by_type_and_name", name, node_name,
                      **({"type_version": version} if version else {}))
        elif r == 3:
            self.emit(f"get_{K}s_by_external_ids", self.sample(EXT_POOL[kind], 1, 3))
        elif r == 4:
            name, version = self.type_ref(kind)
            self.emit(f"get_{K}_type", name, **({"type_version": version} if version else {}))
        elif r == 5:
            self.emit(f"get_{K}_types")
        elif r == 6:
            ids = [t.id for t in self.sample(self.types[kind], 0, 3)] + ([UNKNOWN_ID] if self.chance(0.2) else [])
            self.emit(f"get_{K}_types_by_id", ids)
        elif r == 7:
            self.emit(f"get_{K}_types_by_external_ids", self.sample(TYPE_EXT_POOL[kind], 1, 2))
        elif r in (8, 9, 10):
            opts = self.list_opts(kind)
            self.emit(f"get_{K}s", *([opts] if opts is not None else []))
        elif r == 11:
            self.emit("get_artifacts_by_uri", self.pick(URIS + ["/nope"]))
        elif r == 12:
            self.emit("get_artifacts_and_types_by_artifact_ids", self.id_list("artifact"))
        elif r == 13:
            self.emit("get_events_by_execution_ids", self.id_list("execution"))
        elif r == 14:
            self.emit("get_events_by_artifact_ids", self.id_list("artifact"))
        elif r == 15:
            self.emit("get_contexts_by_artifact", self.some_id("artifact"))
        elif r == 16:
            self.emit("get_contexts_by_execution", self.some_id("execution"))
        elif r in (17, 18):
            which = self.pick(["artifact", "execution"])
            opts = self.list_opts(which) if self.chance(0.5) else None
            self.emit(f"get_{which}s_by_context", self.some_id("context"),
                      *([opts] if opts is not None else []))
        elif r == 19:
            self.emit("get_parent_contexts_by_context", self.some_id("context"))
        elif r == 20:
            self.emit("get_children_contexts_by_context", self.some_id("context"))
        elif self.query_layer:
            self.read_lineage_subgraph()
        else:
            self.emit(f"get_{K}s_by_id", self.id_list(kind))

    def read_lineage_subgraph(self):
        P = self.pb
        q = P.LineageSubgraphQueryOptions(max_num_hops=self.rng.randint(0, 3))
        start = self.pick(["artifact", "execution"])
        ids = [n.id for n in self.sample(self.nodes[start], 1, 2)] or [UNKNOWN_ID]
        query = f"id IN ({', '.join(map(str, ids))})" if len(ids) > 1 else f"id = {ids[0]}"
        getattr(q, f"starting_{start}s").filter_query = query
        if self.chance(0.5):
            q.direction = self.pick([1, 2, 3])
        kwargs = {}
        if self.chance(0.4):
            kwargs["field_mask_paths"] = self.sample(
                ["artifacts", "executions", "contexts", "events", "artifact_types",
                 "execution_types", "context_types", "associations", "attributions"], 1, 4)
        self.emit("get_lineage_subgraph", q, **kwargs)

    # ------------------------------------------------------------ driver
    ACTIONS = [
        ("act_put_type_new", 5), ("act_put_type_again", 5), ("act_put_type_invalid", 1),
        ("act_put_nodes_new", 11), ("act_put_nodes_update", 7), ("act_put_nodes_invalid", 3),
        ("act_put_events", 5), ("act_put_execution", 6), ("act_put_lineage_subgraph", 4),
        ("act_put_attributions_and_associations", 3), ("act_put_parent_contexts", 3),
        ("act_read", 38),
    ]

    def step(self) -> None:
        self.peek()
        if len(self.calls) < 3:  # bootstrap: one type of each kind
            return self.act_put_type_new(KINDS[len(self.calls)])
        names = [a for a, _ in self.ACTIONS]
        weights = [w for _, w in self.ACTIONS]
        getattr(self, self.rng.choices(names, weights)[0])()

    def generate(self, n: int) -> dict:
        while len(self.calls) < n:
            self.step()
        return {"seed": self.seed, "lib": self.lib.name,
                "calls": self.calls[:n], "results": self.results[:n]}


def generate(seed: int, n: int, lib_name: str = "ml_metadata", query_layer: bool = True) -> dict:
    return Generator(seed, lib_name, query_layer).generate(n)


def main(argv: Optional[list] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, required=True)
    parser.add_argument("--n", type=int, default=300)
    parser.add_argument("--lib", default="ml_metadata", choices=["ml_metadata", "mlmd_log"])
    parser.add_argument("--out", required=True)
    parser.add_argument("--core-only", action="store_true",
                        help="no filter queries or lineage reads (the query layer's features)")
    options = parser.parse_args(argv)
    data = generate(options.seed, options.n, options.lib, query_layer=not options.core_only)
    with open(options.out, "w") as f:
        json.dump(data, f)
    return 0


if __name__ == "__main__":
    sys.exit(main())
