"""Pipeline steps applied as sets (projections/steps.py) leave exactly what the general
path leaves: the same rows in every table (read forms included), ids, times, outcomes."""
from __future__ import annotations

import random
import sqlite3

import pytest

from mlmd_log.producer.records import RecordFactory
from mlmd_log.projections.backend import SqliteBackend
from mlmd_log.projections.projector import Projector
from mlmd_log.proto import metadata_store_pb2 as pb
from mlmd_log.proto import metadata_store_service_pb2 as svc



def every_table(path) -> dict[str, list]:
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        names = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        return {t: sorted(conn.execute(f"SELECT * FROM `{t}`").fetchall(), key=repr) for t in names}
    finally:
        conn.close()


class History:
    """Random records around the pipeline step: many a step can take, many it must leave to
    the general path (names, changed inputs, new contexts, bad properties, odd events).
    Each record is applied as it is made (general path, a batch each), so the history
    names artifacts and contexts that exist, as clients do."""

    def __init__(self, seed: int, path):
        self.rng = random.Random(seed)
        self.factory = RecordFactory()
        self.records: list[bytes] = []
        self.db = SqliteBackend(str(path))
        self.db.create_schema()
        self.projector = Projector(self.db)
        self.projector.engine.steps.enabled = False
        self.artifacts: list[int] = []
        self.executions: list[int] = []
        self.contexts: list[tuple[int, str]] = []

    def add(self, rpc: str, request, response_type=None):
        payload = self.factory.make(rpc, request).SerializeToString()
        [outcome] = self.projector.apply_batch([(len(self.records), payload)])
        self.records.append(payload)
        if outcome.error_code or response_type is None:
            return None
        return response_type.FromString(outcome.response)

    def chance(self, p: float) -> bool:
        return self.rng.random() < p

    def types(self) -> None:
        ids = []
        for rpc, field, message in (
                ("PutArtifactType", "artifact_type", pb.ArtifactType(
                    name="Model", properties={"version": pb.INT, "acc": pb.DOUBLE, "note": pb.STRING})),
                ("PutArtifactType", "artifact_type", pb.ArtifactType(name="Data", properties={"span": pb.INT})),
                ("PutExecutionType", "execution_type", pb.ExecutionType(name="Trainer", properties={"step": pb.INT})),
                ("PutContextType", "context_type", pb.ContextType(name="Run"))):
            request = getattr(svc, rpc + "Request")(**{field: message})
            ids.append(self.add(rpc, request, getattr(svc, rpc + "Response")).type_id)
        self.model, self.data, self.trainer, self.run = ids

    def new_artifact(self) -> pb.Artifact:
        rng = self.rng
        art = pb.Artifact(type_id=rng.choice([self.model, self.model, self.data]), uri=f"u://{rng.randrange(10**6)}")
        if art.type_id == self.model:
            art.properties["version"].int_value = rng.randrange(100)
            if self.chance(0.5):
                art.properties["acc"].double_value = rng.choice([0.1, 1 / 3, 2.5e-7, 123456.789])
        else:
            art.properties["span"].int_value = rng.randrange(5)
        if self.chance(0.3):
            art.custom_properties["tag"].string_value = rng.choice(["a", "b", "\u00fc"])
        if self.chance(0.15):
            art.state = pb.Artifact.LIVE
        odd = rng.random()
        if odd < 0.05:
            art.name = rng.choice(["n1", "n2", "n3"])  # (names may clash: rejected)
        elif odd < 0.08:
            art.properties["missing"].int_value = 1  # (not a property of the type)
        elif odd < 0.10:
            art.type_id = 99  # (unknown type)
        elif odd < 0.12:
            art.external_id = f"x{rng.randrange(4)}"
        return art

    def stored_artifact(self) -> pb.Artifact:
        """An artifact given by id, as a client that read it holds it: mostly as stored
        (without its type name and times, or with them), sometimes changed."""
        from mlmd_log.projections.engine import ARTIFACT
        stored = self.projector.engine.load_node(ARTIFACT, self.rng.choice(self.artifacts))
        art = pb.Artifact()
        art.CopyFrom(stored)
        if self.chance(0.7):
            for name in ("type", "create_time_since_epoch", "last_update_time_since_epoch"):
                art.ClearField(name)
        odd = self.rng.random()
        if odd < 0.1:
            art.uri += "/moved"
        elif odd < 0.2 and art.properties:
            name = sorted(art.properties)[0]
            if art.properties[name].WhichOneof("value") == "int_value":
                art.properties[name].int_value += 1
        elif odd < 0.25:
            art.ClearField("type_id")
        elif odd < 0.28:
            art.type_id = self.data if art.type_id == self.model else self.model
        elif odd < 0.31:
            art.id = 10**6  # (no such artifact)
        elif odd < 0.34:
            art.custom_properties.clear()
        return art

    def seed_artifacts(self, count: int) -> None:
        for _ in range(count):
            art = pb.Artifact(type_id=self.model, uri=f"seed://{self.rng.randrange(10**6)}")
            art.properties["version"].int_value = self.rng.randrange(100)
            made = self.add("PutArtifacts", svc.PutArtifactsRequest(artifacts=[art]), svc.PutArtifactsResponse)
            self.artifacts += made.artifact_ids

    def step(self) -> None:
        rng = self.rng
        req = svc.PutExecutionRequest()
        execution = req.execution
        execution.type_id = self.trainer
        execution.last_known_state = pb.Execution.COMPLETE
        execution.properties["step"].int_value = rng.randrange(1000)
        odd = rng.random()
        if odd < 0.04:
            execution.name = rng.choice(["e1", "e2"])
        elif odd < 0.06:
            execution.properties["step"].string_value = "x"  # (wrong value type)
        elif odd < 0.08 and self.executions:
            execution.id = rng.choice(self.executions)
        elif odd < 0.09:
            req.ClearField("execution")
        for _ in range(rng.choice([0, 1, 2, 2, 2, 3])):
            pair = req.artifact_event_pairs.add()
            kind = rng.random()
            if kind < 0.4:
                pair.artifact.CopyFrom(self.stored_artifact())
            elif kind < 0.9:
                pair.artifact.CopyFrom(self.new_artifact())
            else:
                pair.event.artifact_id = rng.choice(self.artifacts)
            if not pair.HasField("event") and self.chance(0.9):
                pair.event.type = rng.choice([pb.Event.INPUT, pb.Event.OUTPUT, pb.Event.DECLARED_OUTPUT])
            if pair.HasField("event"):
                if not pair.event.type and self.chance(0.9):
                    pair.event.type = pb.Event.INPUT
                if self.chance(0.2):
                    pair.event.path.steps.add().key = "out"
                    pair.event.path.steps.add().index = rng.randrange(3)
                if self.chance(0.05):
                    pair.event.milliseconds_since_epoch = 42
                if self.chance(0.03):
                    pair.event.execution_id = 7
        for _ in range(rng.choice([0, 1, 1, 1, 2])):
            if self.contexts and self.chance(0.85):
                context_id, name = rng.choice(self.contexts)
            else:
                context_id, name = None, f"run-{rng.randrange(10**6)}"
            context = req.contexts.add(type_id=self.run, name=name)
            if context_id is not None and self.chance(0.03):
                context.id = context_id
        req.options.reuse_context_if_already_exist = self.chance(0.9)
        if self.chance(0.05):
            req.options.force_update_time = True
        made = self.add("PutExecution", req, svc.PutExecutionResponse)
        if made is not None:
            self.executions.append(made.execution_id)
            self.artifacts += [i for i in made.artifact_ids if i > 0 and i not in self.artifacts]
            for context, context_id in zip(req.contexts, made.context_ids):
                if (context_id, context.name) not in self.contexts:
                    self.contexts.append((context_id, context.name))

    def other(self) -> None:
        """Records between the steps that change what a step may rely on."""
        rng = self.rng
        pick = rng.random()
        if pick < 0.3:
            art = self.stored_artifact()
            if self.chance(0.5):
                art.custom_properties["seen"].int_value = rng.randrange(3)
            self.add("PutArtifacts", svc.PutArtifactsRequest(artifacts=[art]))
        elif pick < 0.5 and self.contexts:
            context_id, name = rng.choice(self.contexts)
            if self.add("PutContexts", svc.PutContextsRequest(contexts=[pb.Context(
                    id=context_id, type_id=self.run, name=name + "-renamed")]), svc.PutContextsResponse):
                self.contexts = [(i, n + "-renamed" if i == context_id else n) for i, n in self.contexts]
        elif pick < 0.7 and self.contexts:
            self.add("PutAttributionsAndAssociations", svc.PutAttributionsAndAssociationsRequest(
                attributions=[pb.Attribution(artifact_id=rng.choice(self.artifacts),
                                             context_id=rng.choice(self.contexts)[0])]))
        else:
            self.seed_artifacts(1)


def history(seed: int, steps: int, path) -> list[bytes]:
    h = History(seed, path)
    h.types()
    h.seed_artifacts(6)
    for _ in range(steps):
        if h.chance(0.1):
            h.other()
        else:
            h.step()
    h.db.close()
    return h.records


def apply_all(db, records: list[bytes], batch_size: int, steps: bool = True):
    """Outcomes of applying ``records`` to ``db`` in batches, and how many went as steps."""
    projector = Projector(db)
    taken = []
    original = projector.engine.steps.put_execution

    def counting(req, now, offset):
        out = original(req, now, offset)
        taken.append(out is not None)
        return out

    projector.engine.steps.put_execution = counting
    projector.engine.steps.enabled = steps
    outcomes = []
    numbered = list(enumerate(records))
    for start in range(0, len(numbered), batch_size):
        outcomes += projector.apply_batch(numbered[start:start + batch_size])
    return outcomes, sum(taken)


def apply(path, records: list[bytes], batch_size: int, steps: bool):
    db = SqliteBackend(str(path))
    db.create_schema()
    outcomes, taken = apply_all(db, records, batch_size, steps)
    db.close()
    return outcomes, every_table(path), taken


@pytest.mark.parametrize("seed,batch_size", [(1, 1), (2, 7), (3, 50), (4, 400)])
def test_steps_leave_what_the_general_path_leaves(tmp_path, seed, batch_size):
    records = history(seed, 400, tmp_path / "made.sqlite")
    general, general_tables, _ = apply(tmp_path / "general.sqlite", records, batch_size, steps=False)
    stepped, stepped_tables, taken = apply(tmp_path / "steps.sqlite", records, batch_size, steps=True)
    rejected = sum(1 for o in general if o.error_code)
    assert 10 < rejected < len(records) // 2  # (the history exercises both outcomes)
    assert taken > 100  # (many records went through the step writer)
    assert general_tables["Event"] and general_tables["mlmdlog_artifact_pb"]
    assert stepped == general
    assert stepped_tables == general_tables


def test_steps_whose_rows_clash_are_applied_again_by_the_general_path(tmp_path):
    """A row the engine did not write (here: an Event put in behind its back) makes the
    queued rows fail at the flush; the batch is applied again without the step writer,
    and the record that meets the clash is rejected as the general path rejects it."""
    records = history(5, 60, tmp_path / "made.sqlite")

    def run(path, steps):
        db = SqliteBackend(str(path))
        db.create_schema()
        projector = Projector(db)
        projector.engine.steps.enabled = steps
        numbered = list(enumerate(records))
        outcomes = projector.apply_batch(numbered[:20])
        next_event = projector.engine.snapshot()["Event"]
        db.conn.execute("INSERT INTO `Event` (`id`, `artifact_id`, `execution_id`, `type`, "
                        "`milliseconds_since_epoch`) VALUES (?, 1, 1, 1, 0)", (next_event + 3,))
        db.conn.commit()
        outcomes += projector.apply_batch(numbered[20:])
        assert projector.engine.steps.enabled == steps
        db.close()
        return outcomes, every_table(path)

    general, general_tables = run(tmp_path / "general.sqlite", False)
    stepped, stepped_tables = run(tmp_path / "steps.sqlite", True)
    assert any("event already exists" in o.error_message for o in general[20:])
    assert stepped == general
    assert stepped_tables == general_tables


@pytest.mark.mysql
def test_steps_into_mysql_leave_what_the_general_path_leaves_on_sqlite(tmp_path, mysql_url):
    """The direct MySQL projector takes the same steps, their rows sent as multi-row
    statements: MLMD's tables, the read forms and the outcomes equal the general path's on
    SQLite (batches of 50, so rejected records fall inside batches too)."""
    from dbdump import MLMD_TABLES, normalised
    from mlmd_log.projections.mysql import MySqlBackend
    from mysqldb import drop, dump_mysql, fresh_database

    records = history(6, 300, tmp_path / "made.sqlite")
    general, general_tables, _ = apply(tmp_path / "general.sqlite", records, 50, steps=False)
    target = fresh_database(mysql_url)
    try:
        db = MySqlBackend(target)
        db.create_schema()
        stepped, taken = apply_all(db, records, 50)
        tables = MLMD_TABLES + ("mlmdlog_artifact_pb", "mlmdlog_execution_pb", "mlmdlog_context_pb",
                                "mlmdlog_checkpoint")
        ours = dump_mysql(db, tables)
        db.close()
    finally:
        drop(target)
    assert taken > 60
    assert stepped == general
    expected = normalised({t: general_tables[t] for t in tables})
    for table in tables:
        assert ours[table] == expected[table], f"{table} differs"
    assert expected["Event"] and expected["mlmdlog_artifact_pb"]
