"""A writer of the pipelined projector in a process of its own.

The pipelined projector's main thread decides records from memory; its writers send the
rows to MySQL. As threads, the writers' Python (formatting the statements, PyMySQL)
shares the interpreter lock with the main thread, which then decides records about a
third slower than alone. So each writer is a child process that owns one connection to
the projection, and the thread that drives it only passes the batch along (one pickle)
and waits.

The child does what it is told, one transaction at a time, and answers each message with
None or the exception it met (the transaction then rolled back):

- ``("rows", inserts, outcome_rows)``: begins a transaction, inserts the rows;
- ``("end", start, touched, end, last_time_ms)``: checks that the checkpoint is at
  ``start``, re-times the inputs, moves the checkpoint, commits;
- ``("rollback",)``;
- ``None``: exits.

Messages are pickles with a 4-byte length, on the child's stdin and stdout. The
projection's address (with its password) is the first message, not an argument. The
child is started as ``python -m`` rather than by multiprocessing's spawn (which the
mirror's stager uses): spawn imports the parent's main module again, and a library
user's script without a ``__main__`` guard would then run twice.
A child that dies is a lost connection (``MySqlBackend.lost``): the service connects
again and starts over from the checkpoint, as after any lost connection.
"""
from __future__ import annotations

import os
import pickle
import struct
import subprocess
import sys
from typing import Any, BinaryIO, Optional

from mlmd_log import errors
from mlmd_log.projections.mysql import MySqlBackend
from mlmd_log.projections.bookkeeping import OUTCOME_INSERT, write_checkpoint
from mlmd_log.projections.projector import check_checkpoint
from mlmd_log.projections.steps import write_rows

# Seconds a writer waits for a row lock. Only rows that clash (which the step writer's
# memory rules out) can make a batch wait for a later one; that batch then fails and is
# applied again the ordinary way, instead of the two waiting out the server's default.
LOCK_WAIT_S = 10

_HEADER = struct.Struct("<I")


def _send(stream: BinaryIO, message: Any) -> None:
    data = pickle.dumps(message, pickle.HIGHEST_PROTOCOL)
    stream.write(_HEADER.pack(len(data)) + data)
    stream.flush()


def _receive(stream: BinaryIO) -> tuple[bool, Any]:
    """(True, message), or (False, None) at the end of the stream."""
    header = stream.read(_HEADER.size)
    if len(header) < _HEADER.size:
        return False, None
    (size,) = _HEADER.unpack(header)
    data = stream.read(size)
    if len(data) < size:
        return False, None
    return True, pickle.loads(data)


class WriterProcess:
    """The parent's handle on one writer child; ``call`` sends a message and returns once
    the child has done it (raising what it met)."""

    def __init__(self, db: Any):
        """``db``: the projection's MySqlBackend (the child connects to its target)."""
        self._lost = db.lost
        package_parent = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (package_parent, env.get("PYTHONPATH")) if p)
        self._proc = subprocess.Popen([sys.executable, "-m", "mlmd_log.consumer.writer_process"],
                                      stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env)
        try:
            self._exchange(db.target)  # (answered once connected)
        except BaseException:
            self.close()  # (the child has exited or is told to; its pipes are closed here)
            raise

    def call(self, *message: Any) -> None:
        self._exchange(message)

    def _exchange(self, message: Any) -> None:
        try:
            _send(self._proc.stdin, message)
            ok, answer = _receive(self._proc.stdout)
        except (OSError, ValueError) as exc:  # (a broken pipe, or a closed handle)
            raise self._lost(f"the projection's writer process is gone: {exc}") from None
        if not ok:
            raise self._lost(f"the projection's writer process ended (exit code {self._proc.poll()})")
        if answer is not None:
            raise answer

    def close(self) -> None:
        """Asks the child to exit (rolling back what it has not committed); kills it if it
        does not within a few seconds."""
        try:
            _send(self._proc.stdin, None)
        except (OSError, ValueError):
            pass  # (it is gone already)
        try:
            self._proc.stdin.close()
        except OSError:
            pass  # (a broken pipe while flushing: the handle is closed all the same)
        try:
            self._proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()
        self._proc.stdout.close()

    @property
    def pid(self) -> int:
        return self._proc.pid


class _Session:
    """The child's connection and whether a batch's transaction is open on it."""

    def __init__(self, db: Any):
        self.db = db
        self.open = False

    def serve(self, message: tuple) -> None:
        db, kind = self.db, message[0]
        if kind == "rows":
            _, inserts, outcome_rows = message
            if self.open:  # (never left open: the next BEGIN would commit half a batch)
                self.rollback()
            db.begin()
            self.open = True
            write_rows(db, inserts, {})
            db.executemany(OUTCOME_INSERT, outcome_rows)
        elif kind == "end":
            _, start, touched, end, last_time_ms = message
            check_checkpoint(db, start)
            write_rows(db, {}, touched)
            write_checkpoint(db, end, last_time_ms)
            db.commit()
            self.open = False
        elif kind == "rollback":
            self.rollback()
        else:
            raise ValueError(f"unknown message {kind!r}")

    def rollback(self) -> None:
        """Rolls the open transaction back (no round trip when none is open)."""
        if self.open:
            self.db.rollback()
            self.open = False


def main(stdin: Optional[BinaryIO] = None, stdout: Optional[BinaryIO] = None) -> int:
    stdin = stdin or sys.stdin.buffer
    stdout = stdout or sys.stdout.buffer
    ok, target = _receive(stdin)
    if not ok:
        return 0
    from mlmd_log.process import tune_gc
    tune_gc()
    try:
        db = MySqlBackend(target)
        db.execute(f"SET SESSION innodb_lock_wait_timeout = {LOCK_WAIT_S}")
    except BaseException as exc:  # noqa: BLE001  (the parent raises it)
        _send(stdout, _picklable(exc))
        return 1
    _send(stdout, None)
    session = _Session(db)
    try:
        while True:
            ok, message = _receive(stdin)
            if not ok or message is None:
                return 0
            try:
                session.serve(message)
                answer = None
            except BaseException as exc:  # noqa: BLE001  (the parent raises it)
                session.rollback()  # (whatever failed in a transaction, its commit included)
                answer = _picklable(exc)
            _send(stdout, answer)
    finally:
        db.close()


def _picklable(exc: BaseException) -> BaseException:
    try:
        pickle.loads(pickle.dumps(exc))
        return exc
    except Exception:  # noqa: BLE001
        return errors.InternalError(f"{type(exc).__name__}: {exc}")


if __name__ == "__main__":
    sys.exit(main())
