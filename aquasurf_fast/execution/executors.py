"""Where evaluations run. The search loop talks to an ``Executor`` only through this interface:

    executor.start(runner)           # once, with what every job runs with (an evaluate callable)
    executor.free_slots() -> int     # how many more jobs it takes now
    executor.submit(key, job)        # run_one(runner, key, job): a ``jobs.Job`` (a training, a
                                     # Fisher chunk) or a plain name, evaluated by the runner
    executor.wait(timeout) -> [Outcome]   # finished jobs (success, failure, crash, timeout)
    executor.stop() -> [key]         # kill whatever runs now (Ctrl-C); returns their keys
    executor.shutdown()              # release the workers

``ProcessExecutor`` runs K worker processes on this machine; ``InlineExecutor`` evaluates in the
calling process (debugging, and tests that do not need isolation). ``RayExecutor``
(``aquasurf_fast.execution.ray_executor``) runs them as Ray tasks on a cluster; ``make_executor`` picks one by
name, as the command line does.
"""
from __future__ import annotations

import multiprocessing as mp
import os
import signal
import time
from typing import List, Optional, Tuple

from ..runtime.memory import keep_freed_memory
from ..runtime.threads import limit_threads
from .base import Executor, Outcome, run_one, split_result


class InlineExecutor(Executor):
    """Evaluates in the calling process, one job at a time, when ``wait`` is called."""

    n_workers = 1

    def start(self, evaluate):
        self._evaluate = evaluate
        self._queue: List[Tuple[str, str]] = []

    def free_slots(self):
        return 1 - len(self._queue)

    def submit(self, key, name):
        self._queue.append((key, name))

    def wait(self, timeout):
        done = [run_one(self._evaluate, key, name) for key, name in self._queue]
        self._queue = []
        return done

    def stop(self):
        keys = [key for key, _ in self._queue]
        self._queue = []
        return keys

    def shutdown(self):
        self._queue = []


def _worker_main(conn, evaluate_bytes: bytes, n_threads: int, gpu: Optional[str] = None) -> None:
    """A worker process: receive (key, name), send back an Outcome, until the pipe closes.
    With ``gpu`` it sees that GPU only, as ``cuda:0``."""
    from ..devices import pin_gpu

    # Before anything can initialise CUDA (unpickling ``evaluate`` imports the task's modules).
    pin_gpu(gpu)
    # The coordinator handles Ctrl-C and stops the workers itself; a worker dying on the same SIGINT
    # would be reported as a crashed evaluation.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # Each worker gets its share of the cores: OpenMP and torch, and the fused activation kernels'
    # own thread pool, which otherwise starts one thread per core in every worker.
    os.environ.setdefault("OMP_NUM_THREADS", str(n_threads))
    os.environ.setdefault("AQF_NUM_THREADS", str(n_threads))
    import pickle  # the evaluate callable only, produced by this package's coordinator

    evaluate = pickle.loads(evaluate_bytes)
    limit_threads(n_threads)
    keep_freed_memory()
    while True:
        try:
            job = conn.recv()
        except (EOFError, OSError):  # coordinator gone: nothing left to report to
            return
        if job is None:
            return
        key, name = job
        outcome = run_one(evaluate, key, name)
        try:
            conn.send(outcome)
        except (BrokenPipeError, OSError):
            return


class _Slot:
    def __init__(self):
        self.proc = None
        self.conn = None
        self.job: Optional[Tuple[str, str, float]] = None  # key, name, start time


class ProcessExecutor(Executor):
    """K worker processes on this machine, each evaluating one name at a time.

    A worker that dies (segfault, OOM kill, SIGKILL) is reported as a failed evaluation and replaced.
    With ``timeout`` a job running longer is killed and reported as failed. ``threads_per_worker``
    caps each worker's torch/OpenMP threads so that K workers do not oversubscribe the cores.
    ``start_method`` defaults to "spawn": forking a parent that already runs torch threads can hang.
    With ``one_gpu_each`` on a machine with GPUs, worker i sees only GPU i mod (the GPUs this
    process may use), so that K workers share the machine's GPUs evenly; a replaced worker keeps
    its GPU.
    """

    def __init__(self, n_workers: int = 1, timeout: Optional[float] = None,
                 threads_per_worker: Optional[int] = None, start_method: str = "spawn",
                 one_gpu_each: bool = False):
        if n_workers < 1:
            raise ValueError(f"n_workers must be at least 1, got {n_workers}")
        if timeout is not None and not timeout > 0:
            raise ValueError(f"timeout must be positive seconds, got {timeout}")
        self.n_workers = int(n_workers)
        self.timeout = timeout
        self.threads_per_worker = threads_per_worker or max(
            1, (os.cpu_count() or 1) // self.n_workers)
        self.start_method = start_method
        self.one_gpu_each = bool(one_gpu_each)
        self._gpus: List[str] = []
        self._slots: List[_Slot] = []

    def start(self, evaluate):
        import pickle

        try:
            self._evaluate_bytes = pickle.dumps(evaluate)
        except Exception as exc:
            raise ValueError(
                "evaluate must be picklable to run in worker processes (a module-level function or "
                f"an object of a module-level class): {exc}"
            ) from exc
        self._ctx = mp.get_context(self.start_method)
        if self.one_gpu_each:
            from ..devices import visible_gpus

            self._gpus = visible_gpus()
        self._slots = [_Slot() for _ in range(self.n_workers)]
        for slot in self._slots:
            self._spawn(slot)

    def _spawn(self, slot: _Slot) -> None:
        from ..devices import worker_gpu

        parent, child = self._ctx.Pipe()
        gpu = worker_gpu(self._slots.index(slot), self._gpus)
        proc = self._ctx.Process(target=_worker_main, args=(child, self._evaluate_bytes,
                                                            self.threads_per_worker, gpu),
                                 daemon=True)
        proc.start()
        child.close()
        slot.proc, slot.conn, slot.job = proc, parent, None

    def _kill(self, slot: _Slot) -> None:
        if slot.proc is not None and slot.proc.is_alive():
            slot.proc.kill()
        if slot.proc is not None:
            slot.proc.join(5)
        if slot.conn is not None:
            slot.conn.close()

    def free_slots(self):
        return sum(slot.job is None for slot in self._slots)

    def submit(self, key, name):
        for slot in self._slots:
            if slot.job is None:
                slot.conn.send((key, name))
                slot.job = (key, name, time.monotonic())
                return
        raise RuntimeError("submit() with no free worker; check free_slots() first")

    def wait(self, timeout):
        from multiprocessing.connection import wait as wait_any

        busy = [slot for slot in self._slots if slot.job is not None]
        if not busy:
            time.sleep(min(timeout, 0.05))
            return []
        wait_any([s.conn for s in busy] + [s.proc.sentinel for s in busy], timeout)
        done = []
        now = time.monotonic()
        for slot in busy:
            key, name, started = slot.job
            outcome = None
            try:
                if slot.conn.poll():
                    outcome = slot.conn.recv()
            except (EOFError, OSError):
                outcome = None
            if outcome is not None:
                slot.job = None
                done.append(outcome)
            elif not slot.proc.is_alive():
                code = slot.proc.exitcode
                why = (f"killed by signal {-code} ({signal.Signals(-code).name})"
                       if code is not None and code < 0 else f"exit code {code}")
                done.append(Outcome(key, name, False, runtime=now - started,
                                    error=f"worker process died while evaluating {name} ({why})"))
                self._kill(slot)
                self._spawn(slot)
            elif self.timeout is not None and now - started > self.timeout:
                done.append(Outcome(key, name, False, runtime=now - started,
                                    error=f"evaluation of {name} timed out after {self.timeout:g} s"))
                self._kill(slot)
                self._spawn(slot)
        return done

    def stop(self):
        keys = []
        for slot in self._slots:
            if slot.job is not None:
                keys.append(slot.job[0])
            self._kill(slot)
            slot.job = None
        self._slots = []
        return keys

    def shutdown(self):
        for slot in self._slots:
            if slot.proc is not None and slot.proc.is_alive() and slot.job is None:
                try:
                    slot.conn.send(None)
                except (BrokenPipeError, OSError):
                    pass
        deadline = time.monotonic() + 5
        for slot in self._slots:
            if slot.proc is not None:
                slot.proc.join(max(0.0, deadline - time.monotonic()))
            self._kill(slot)
        self._slots = []


def default_executor(workers: int, timeout: Optional[float] = None,
                     one_gpu_each: bool = False) -> Executor:
    """Worker processes, or the calling process itself for ``workers=0``."""
    if workers == 0:
        return InlineExecutor()
    return ProcessExecutor(workers, timeout=timeout, one_gpu_each=one_gpu_each)


def make_executor(kind: str, workers: int, address: Optional[str] = None,
                  timeout: Optional[float] = None, gpus: Optional[float] = None,
                  one_gpu_each: bool = False) -> Executor:
    """The executor a command line asks for: "local" worker processes or "ray". With
    ``one_gpu_each``, local workers take one GPU each (Ray assigns GPUs itself)."""
    if kind == "ray":
        from .ray_executor import RayExecutor

        return RayExecutor(address=address, num_gpus=gpus, timeout=timeout,
                           max_concurrent=workers if workers > 0 else None)
    if kind != "local":
        raise ValueError(f"unknown executor {kind!r}: use local or ray")
    if address is not None:
        raise ValueError("--address only applies to --executor ray")
    return default_executor(workers, timeout=timeout, one_gpu_each=one_gpu_each)


__all__ = ["Executor", "InlineExecutor", "ProcessExecutor", "Outcome", "default_executor",
           "make_executor", "split_result", "run_one"]
