"""Fisher features of a study computed by an executor: chunks of names as jobs, results as they come.

The driver writes each chunk's features to the study as soon as it arrives, so an interrupted run
keeps everything finished so far. A chunk whose job failed (its worker died, it timed out) is
submitted again, up to the study's retry limit; after that its functions are recorded as failed
with the error, never silently dropped.
"""
from __future__ import annotations

import collections
from typing import Any, Callable, Counter, List, Optional, Sequence

import numpy as np

from ..execution.base import Outcome, Raw
from ..execution.jobs import Attempts, FisherChunk, JobQueue
from .store import StudyError


class FisherChunkJob:
    """``job.features(names) -> (features, ok, reasons)``: what the workers that compute Fisher
    features are started with (the runner of ``execution.jobs.FisherChunk`` jobs); calling it
    with space-separated names returns the same as a ``Raw`` value.

    Carries either a task spec (workers load the task, its model and its Fisher batch themselves)
    or an explicit ``build``/``inputs``/``targets``, which must then be picklable. ``device``
    None means where explicit ``inputs`` live, and "auto" (a GPU when the worker has one) for the
    task's own batch, so that every featurization of a study, the search's pool growth
    included, computes on the same kind of device as ``aquasurf featurize``.
    Each chunk runs on one thread (``thread_limit(1)``), in the driver as in a worker: a chunk is
    many candidates one after another, and several chunks at once (the executor's workers) are
    what uses the cores.
    """

    def __init__(self, spec: Optional[str] = None, build: Optional[Callable] = None,
                 inputs: Any = None, targets: Any = None, featurizer: Optional[Callable] = None,
                 seed: int = 42, device: Any = None):
        self.spec, self.build, self.inputs, self.targets = spec, build, inputs, targets
        self.featurizer, self.seed, self.device = featurizer, seed, device
        self._loaded = None

    def __getstate__(self):
        return {**self.__dict__, "_loaded": None}  # workers load the task themselves

    @property
    def resources(self) -> dict:
        """The task's ``RESOURCES`` (a GPU, say), requested by the Ray executor for each chunk;
        no GPU when the features are to be computed on the CPU."""
        if self.spec is None:
            return {}
        from ..tasks import load_task

        resources = dict(load_task(self.spec).resources)
        if self.device is not None and str(self.device) == "cpu":
            resources.pop("num_gpus", None)
        return resources

    def _model_and_batch(self):
        if self._loaded is None:
            build, inputs, targets = self.build, self.inputs, self.targets
            if build is None or inputs is None:
                from ..tasks import load_task

                task = load_task(self.spec)
                build = build or task.build
                if inputs is None:
                    inputs, targets = task.fisher_batch()
            self._loaded = build, inputs, targets
        return self._loaded

    def __call__(self, chunk: str) -> Raw:
        return Raw(self.features(chunk))

    def features(self, names):
        """(features, ok, reasons) of ``names`` (a list, or a string of space-separated names)."""
        from ..runtime.threads import thread_limit

        build, inputs, targets = self._model_and_batch()
        device = self.device
        if device is None and self.inputs is None:
            device = "auto"
        if isinstance(device, str):  # "auto" means this worker's GPU, which the driver may lack
            from ..devices import resolve_device

            device = resolve_device(device)
        featurizer = self.featurizer
        if featurizer is None:
            from ..fisher.candidates import fisher_features_for

            featurizer = fisher_features_for
        # Limited here rather than through fisher_features_for's own "auto", so that a custom
        # featurizer and every model size follow it too.
        with thread_limit(1):
            names = names.split(" ") if isinstance(names, str) else list(names)
            return featurizer(build, names, inputs, targets, seed=self.seed,
                              device=device, progress=False)


def failed_chunk(n: int, attempts: int, outcome: Outcome):
    """(features, ok, reasons) recorded for the ``n`` classes of a chunk whose job failed
    ``attempts`` times, the last with ``outcome``: invalid, with the job's error as the reason."""
    reason = f"featurization job failed {attempts} times: {outcome.last_line()}"
    return np.full((n, 1), np.nan, dtype=np.float32), [False] * n, [reason] * n


def failure_counts(ok: Sequence[bool], reasons: Sequence[str]) -> Counter[str]:
    """How often each reason occurs among the classes whose features failed."""
    return collections.Counter(r for o, r in zip(ok, reasons) if not o)


def compute_chunks(job: FisherChunkJob, names: Sequence[str], chunk: int,
                   record: Callable[[List[str], np.ndarray, Sequence[bool], Sequence[str]], None],
                   executor=None, max_retries: int = 0, progress: bool = True) -> None:
    """The features of ``names`` by ``job``, ``chunk`` at a time, each chunk passed to ``record``
    as it is done: in this process, or by ``executor`` (``run_chunks``)."""
    chunks = [list(names[i:i + chunk]) for i in range(0, len(names), chunk)]
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(names), desc="Fisher features", unit="fn")
    try:
        if executor is None:
            for part in chunks:
                record(part, *job.features(part))
                if bar is not None:
                    bar.update(len(part))
        else:
            run_chunks(executor, job, chunks, record, max_retries, bar)
    finally:
        if bar is not None:
            bar.close()


def run_chunks(executor, job: FisherChunkJob, chunks: Sequence[List[str]],
               record: Callable[[List[str], np.ndarray, Sequence[bool], Sequence[str]], None],
               max_retries: int, bar=None, poll_s: float = 0.2) -> int:
    """Run every chunk through ``executor`` as a ``FisherChunk`` job; ``record`` each result.
    Returns failed job attempts."""
    queue = JobQueue(executor, Attempts(max_retries))
    for names in chunks:
        queue.submit(FisherChunk(names))
    failures = 0
    executor.start(job)
    try:
        while queue:
            queue.dispatch()
            for chunk, outcome, verdict in queue.wait(poll_s):
                if verdict == Attempts.OUT_OF_MEMORY:  # the machine failed, not these candidates
                    raise StudyError(
                        f"featurizing {len(chunk.names)} classes ran out of memory ("
                        f"{outcome.last_line('MemoryError')}); the "
                        "features computed so far are kept. Free memory or use fewer workers or "
                        "a smaller chunk, then featurize again.")
                if verdict != Attempts.OK:
                    failures += 1
                if verdict == Attempts.RETRY:
                    continue  # queued again
                record(chunk.names, *(outcome.value if verdict == Attempts.OK else failed_chunk(
                    len(chunk.names), queue.attempts.failures(chunk), outcome)))
                if bar is not None:
                    bar.update(len(chunk.names))
    except BaseException:
        executor.stop()
        raise
    finally:
        executor.shutdown()
    return failures


__all__ = ["FisherChunkJob", "compute_chunks", "failed_chunk", "failure_counts", "run_chunks"]
