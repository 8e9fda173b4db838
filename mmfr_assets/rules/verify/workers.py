"""`math-verify` in worker processes, each item under a deadline of our own.

math-verify's own timeouts use SIGALRM, which only works on the main thread (Dagster runs
steps on other threads too), and sympy can spin for minutes on adversarial input. So every
call runs in a child process; the parent hands each idle worker one item at a time, waits on
the sockets with the earliest deadline as timeout, and kills a worker whose item overran it:
that item is undecided ("timeout"), a fresh worker takes its place, and the other items go on.

Written here rather than with `concurrent.futures` / `multiprocessing.Pool`: neither can kill
one stuck task without breaking the whole pool. Workers are plain `python -m` subprocesses
talking over a socket pair (not `multiprocessing` spawn/forkserver, which re-import the
caller's `__main__` and fail in scripts without a main guard; not fork, unsafe in a threaded
Dagster process).
"""

from __future__ import annotations

import importlib
import os
import socket
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait

# Result of one item: (equivalent or None, status), status "ok", "timeout", "error: …",
# "unparsed" (math-verify found no expression on one side).
Outcome = tuple[bool | None, str]
DEFAULT_CHECK = "mmfr_assets.rules.verify.workers:math_verify_pair"
#: Seconds math-verify may spend on one pair before its worker is killed and the pair stays
#: undecided: the default of `MathVerifyPool`, `AnswerVerifier` and the selection configs.
MATH_VERIFY_TIMEOUT_S = 5.0


def has_expression(parsed: Sequence[object]) -> bool:
    """Whether math-verify's `parse` found a mathematical expression, not just text: a side
    read only as a string would be compared as a string, and two strings the rules did not
    match ("x̂ ...", "F = Mg * ...") would come out "different" without any mathematics."""
    return any(not isinstance(p, str) for p in parsed)


def math_verify_pair(reference: str, candidate: str) -> Outcome:
    """math-verify on one pair, in this process (no timeouts: the caller owns the deadline)."""
    from math_verify import parse, verify

    def wrapped(text: str) -> str:
        return text if "$" in text or "\\(" in text or "\\[" in text else f"${text}$"

    try:
        gold = parse(wrapped(reference), parsing_timeout=None)
        answer = parse(wrapped(candidate), parsing_timeout=None)
        if not has_expression(gold) or not has_expression(answer):
            return None, "unparsed"
        if verify(gold, answer, timeout_seconds=None):
            return True, "ok"
        other = other_reading(gold[0], answer[0])
        return bool(other is not None and verify(*other, timeout_seconds=None)), "ok"
    except Exception as error:  # sympy raises nearly anything on odd input
        return None, f"error: {type(error).__name__}: {str(error)[:200]}"


def other_reading(gold: object, answer: object) -> tuple[object, object] | None:
    """The two parsed answers read once more where math-verify's reading loses what was
    meant: `i` as the imaginary unit when it is the only symbol on either side ("1+2i" against
    "i(2-i)": math-verify takes `i` for a real variable), and an inequality in one variable as
    the set it describes when the other side is an interval ("x > 1" against "(1, \\infty)").
    None when neither applies."""
    import sympy

    exprs = (gold, answer)
    if not all(isinstance(e, sympy.Basic) for e in exprs):
        return None
    symbols = set().union(*(e.free_symbols for e in exprs))
    if symbols and all(s.name == "i" for s in symbols):
        return tuple(e.subs({s: sympy.I for s in e.free_symbols}) for e in exprs)
    sets = [isinstance(e, sympy.Set) for e in exprs]
    relations = [isinstance(e, (sympy.core.relational.Relational, sympy.And, sympy.Or)) for e in exprs]
    if any(sets) and any(relations) and len(symbols) == 1:
        try:
            return tuple(e.as_set() if rel else e for e, rel in zip(exprs, relations))
        except Exception:  # as_set raises NotImplementedError and others on what it cannot solve
            return None
    return None


def _resolve(reference: str) -> Callable[[str, str], Outcome]:
    module, _, name = reference.partition(":")
    return getattr(importlib.import_module(module), name)


def _serve(fd: int, check_reference: str) -> None:
    """Worker loop: receive (key, reference, candidate), answer (key, outcome); None ends it."""
    import logging

    import math_verify  # noqa: F401  (import sympy and the grammar once, before any item)

    from mmfr_assets.rules.verify import fast_math_verify

    # "timeout disabled" warnings: the deadline is the parent's
    logging.getLogger("math_verify").setLevel(logging.ERROR)
    fast_math_verify.install()
    check = _resolve(check_reference)
    conn = Connection(fd)
    conn.send(("ready", None))
    while True:
        try:
            item = conn.recv()
        except (EOFError, OSError):
            return
        if item is None:
            return
        key, reference, candidate = item
        conn.send((key, check(reference, candidate)))


@dataclass
class _Worker:
    process: subprocess.Popen
    conn: Connection
    key: int | None = None
    deadline: float = 0.0
    ready: bool = False


class MathVerifyPool:
    """`workers` processes running math-verify, each item killed after `timeout_s`.

    Use as a context manager (or call `close()`): workers start on the first `run` (each imports
    sympy, 1-2 s; an item's deadline starts when its worker is ready) and end on exit, killed if
    they do not stop. `check` names the function a worker
    runs ("module:function"; tests substitute one that hangs). `run` holds a lock: one batch
    at a time.
    """

    def __init__(
        self, workers: int | None = None, timeout_s: float = MATH_VERIFY_TIMEOUT_S, check: str = DEFAULT_CHECK
    ) -> None:
        self.size = max(1, workers or (os.cpu_count() or 1))
        self.timeout_s = timeout_s
        self.check = check
        self._workers: list[_Worker] = []
        self._lock = threading.Lock()
        self.killed = 0  # items that overran their deadline

    def __enter__(self) -> MathVerifyPool:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _spawn(self) -> _Worker:
        parent, child = socket.socketpair()
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
        process = subprocess.Popen(
            [sys.executable, "-m", "mmfr_assets.rules.verify._worker_main", str(child.fileno()), self.check],
            pass_fds=[child.fileno()],
            stdin=subprocess.DEVNULL,
            env=env,
        )
        child.close()
        return _Worker(process, Connection(parent.detach()))

    def _start(self) -> None:
        while len(self._workers) < self.size:
            self._workers.append(self._spawn())

    def _end(self, worker: _Worker) -> None:
        worker.process.kill()
        worker.process.wait()
        worker.conn.close()

    def _replace(self, worker: _Worker) -> None:
        self._end(worker)
        self._workers[self._workers.index(worker)] = self._spawn()

    def run(self, pairs: Sequence[tuple[str, str]]) -> list[Outcome]:
        """Outcomes of (reference, candidate) pairs, in order."""
        if not pairs:
            return []
        with self._lock:
            return self._run(pairs)

    def _run(self, pairs: Sequence[tuple[str, str]]) -> list[Outcome]:
        results: list[Outcome | None] = [None] * len(pairs)
        self._start()
        todo = deque(range(len(pairs)))
        done = 0
        while done < len(pairs):
            for worker in self._workers:
                if worker.ready and worker.key is None and todo:
                    key = todo.popleft()
                    worker.key, worker.deadline = key, time.monotonic() + self.timeout_s
                    worker.conn.send((key, *pairs[key]))
            busy = [w for w in self._workers if w.key is not None or not w.ready]
            deadlines = [w.deadline for w in busy if w.key is not None]
            # a starting worker (importing sympy) has no deadline of its own
            timeout = max(0.0, min(deadlines) - time.monotonic()) if deadlines else 120.0
            readable = wait([w.conn for w in busy], timeout)
            if not readable and not deadlines:
                raise RuntimeError("math-verify workers did not start within 120 s")
            for worker in busy:
                if worker.conn in readable:
                    try:
                        key, outcome = worker.conn.recv()
                    except (EOFError, OSError):  # the worker died (out of memory, killed)
                        if worker.key is not None:
                            results[worker.key] = (None, "error: the math-verify worker died")
                            done += 1
                        elif worker.process.poll() is not None and not worker.ready:
                            raise RuntimeError(
                                f"a math-verify worker exited at start (code {worker.process.returncode})"
                            ) from None
                        self._replace(worker)
                        continue
                    if key == "ready":
                        worker.ready = True
                        continue
                    results[key] = outcome
                    worker.key = None
                    done += 1
                elif worker.key is not None and time.monotonic() >= worker.deadline:
                    results[worker.key] = (None, "timeout")
                    done += 1
                    self.killed += 1
                    self._replace(worker)
        return [r if r is not None else (None, "error: lost") for r in results]

    def close(self) -> None:
        """Ask every worker to stop; kill those that do not within 2 s."""
        with self._lock:
            for worker in self._workers:
                try:
                    worker.conn.send(None)
                except (OSError, ValueError):
                    pass
            for worker in self._workers:
                try:
                    worker.process.wait(2)
                except subprocess.TimeoutExpired:
                    worker.process.kill()
                    worker.process.wait()
                worker.conn.close()
            self._workers = []

