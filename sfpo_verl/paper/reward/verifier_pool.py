"""Answer comparisons with a wall-clock limit that holds from any thread.

A small pool of `verifier_worker` subprocesses, used from as many threads as the caller
likes. A comparison that overruns its limit gets its worker killed (a fresh one is started
on demand), so a pathological expression costs at most the limit and never a reward worker.
"""

from __future__ import annotations

import atexit
import json
import os
import queue
import select
import subprocess
import sys
import threading
import time
from enum import Enum
from pathlib import Path

# Importing math-verify (sympy) takes about a second; allow for a loaded machine.
WORKER_STARTUP_TIMEOUT_S = 120.0
DEFAULT_MEMORY_LIMIT_MB = 4096

_PACKAGE_PARENT = str(Path(__file__).resolve().parents[3])  # the folder holding sfpo_verl/


class Outcome(Enum):
    MATCH = "match"
    MISMATCH = "mismatch"
    TIMEOUT = "timeout"
    ERROR = "error"


class VerifierUnavailable(RuntimeError):
    """A verifier subprocess cannot start: a broken environment, not a bad response. Raised,
    not scored, so that a run cannot silently train on all-zero rewards."""


class _WorkerGone(Exception):
    """The worker exited, answered garbage or could not be started; it must not be reused."""


class _WorkerTimedOut(_WorkerGone):
    """The worker overran its time limit; it must not be reused."""


class _Worker:
    """One verifier subprocess and the line protocol to it."""

    def __init__(self, memory_limit_mb: int):
        env = dict(os.environ)
        # The worker imports this package by module name, installed or not.
        env["PYTHONPATH"] = os.pathsep.join(p for p in (_PACKAGE_PARENT, env.get("PYTHONPATH")) if p)
        self.process = subprocess.Popen(
            [sys.executable, "-m", "sfpo_verl.paper.reward.verifier_worker", "--memory-limit-mb", str(memory_limit_mb)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=env,
        )  # OSError here (no fork) propagates: like a failed start, it is not the response's fault
        self._poll = select.poll()  # poll, not select: a large process may hold fds above FD_SETSIZE
        self._poll.register(self.process.stdout, select.POLLIN)
        self._pending = b""
        try:
            self._read_reply(time.monotonic() + WORKER_STARTUP_TIMEOUT_S)
        except _WorkerGone as gone:
            self.kill()
            raise VerifierUnavailable(
                f"the math-verify subprocess did not start ({type(gone).__name__}, exit code "
                f"{self.process.returncode}); its error, if any, is on this process's stderr"
            ) from gone

    def compare(self, gold: str, pred: str, timeout_s: float) -> dict:
        request = {"gold": gold, "pred": pred, "cpu_budget_s": timeout_s + 5.0}
        try:
            self.process.stdin.write((json.dumps(request) + "\n").encode("ascii"))
            self.process.stdin.flush()
        except OSError as error:
            raise _WorkerGone("worker stdin closed") from error
        return self._read_reply(time.monotonic() + timeout_s)

    def _read_reply(self, deadline: float) -> dict:
        while b"\n" not in self._pending:
            remaining_ms = (deadline - time.monotonic()) * 1000
            if remaining_ms <= 0 or not self._poll.poll(remaining_ms):
                raise _WorkerTimedOut()
            chunk = os.read(self.process.stdout.fileno(), 65536)
            if not chunk:
                raise _WorkerGone("worker exited")
            self._pending += chunk
        line, _, self._pending = self._pending.partition(b"\n")
        try:
            return json.loads(line)
        except ValueError as error:
            raise _WorkerGone("unreadable reply") from error

    def kill(self) -> None:
        self.process.kill()
        self.process.wait()
        self.process.stdin.close()
        self.process.stdout.close()


class VerifierPool:
    """Up to `max_workers` verifier subprocesses, started lazily, shared by all threads."""

    def __init__(self, max_workers: int, memory_limit_mb: int = DEFAULT_MEMORY_LIMIT_MB):
        if max_workers < 1:
            raise ValueError(f"max_workers must be >= 1, got {max_workers}")
        self.max_workers = max_workers
        self.memory_limit_mb = memory_limit_mb
        self._idle: queue.LifoQueue[_Worker] = queue.LifoQueue()
        self._lock = threading.Lock()
        self._live = 0
        atexit.register(self.close)

    def compare(self, gold: str, pred: str, timeout_s: float) -> Outcome:
        """Whether `pred` is mathematically equal to `gold`, decided within `timeout_s` seconds
        (not counting a wait for a free worker). Raises VerifierUnavailable if none can start."""
        worker = self._acquire()
        try:
            reply = worker.compare(gold, pred, timeout_s)
        except _WorkerGone as gone:
            self._discard(worker)
            return Outcome.TIMEOUT if isinstance(gone, _WorkerTimedOut) else Outcome.ERROR
        self._idle.put(worker)
        if "error" in reply:
            return Outcome.ERROR
        return Outcome.MATCH if reply["match"] else Outcome.MISMATCH

    def _acquire(self) -> _Worker:
        """An idle worker, a new one while under `max_workers`, else wait for one to free up."""
        while True:
            try:
                return self._idle.get_nowait()
            except queue.Empty:
                pass
            with self._lock:
                start_new = self._live < self.max_workers
                if start_new:
                    self._live += 1
            if start_new:
                try:
                    return _Worker(self.memory_limit_mb)
                except BaseException:
                    with self._lock:
                        self._live -= 1
                    raise
            try:
                # Short waits: a worker killed meanwhile frees a slot rather than an idle worker.
                return self._idle.get(timeout=0.05)
            except queue.Empty:
                continue

    def _discard(self, worker: _Worker) -> None:
        worker.kill()
        with self._lock:
            self._live -= 1

    def close(self) -> None:
        """Stop the idle workers (also run at interpreter exit)."""
        while True:
            try:
                self._discard(self._idle.get_nowait())
            except queue.Empty:
                return
