"""The search loop: workers train the suggested candidates while the study records their results,
renews their leases and grows the Fisher pool toward the best results."""
from __future__ import annotations

import time
from typing import Any, Callable, Dict, Optional

from ..defaults import DEFAULT_GROW, DEFAULT_GROW_EVERY
from .claim import Claim
from .store import StudyError




class RunMixin:
    """``Study.run`` and what it needs."""

    def run(self, evaluate: Optional[Callable[[str], Any]] = None, budget: int = 50,
            workers: int = 1, executor=None, timeout: Optional[float] = None,
            progress: bool = True, max_consecutive_failures: int = 10,
            poll_s: float = 0.2, grow: int = DEFAULT_GROW,
            grow_every: int = DEFAULT_GROW_EVERY) -> Dict[str, Any]:
        """Evaluate candidates until the study holds ``budget`` results (baselines included).

        After every ``grow_every`` results the Fisher pool grows by the ``grow`` classes nearest the
        best results (``Study.grow``; 0 turns it off), which the surrogate sees from the next
        suggestion on. Growth needs the study's task to featurize them, and happens only in the
        surrogate order; in a space whose pool already holds every class it adds nothing.

        ``evaluate(name)`` returns a score or a mapping with ``score`` or ``val_acc`` (other entries
        become metrics); by default the study's task trains with ``aq.Activation(name)``.
        ``workers`` worker processes (0: in this process) unless an ``executor`` is given. Safe to
        run from several processes on one file, and to run again after an interruption: it goes on
        from what the file holds. Ctrl-C gives the running claims back and re-raises.

        Worker processes are started with "spawn": ``evaluate`` must be picklable (a module-level
        function or an instance of a module-level class), and a script calling ``run`` needs the
        usual ``if __name__ == "__main__":`` guard.
        """
        from ..execution.executors import default_executor

        if evaluate is None:
            spec = self.settings.get("task")
            if not spec:
                raise StudyError("this study has no task: pass evaluate=, or create it with a task")
            from ..tasks import TaskEvaluator

            evaluate = TaskEvaluator(spec)
        if budget < 0:
            raise StudyError(f"budget must be >= 0, got {budget}")
        executor = executor or default_executor(workers, timeout=timeout)
        lease_s = float(self.settings["lease_s"])
        in_flight: Dict[str, Claim] = {}
        stats = {"evaluated": 0, "failed_attempts": 0, "stale": 0, "grown": 0}
        failures_in_row, last_error = 0, ""
        if self.settings.get("order") != "surrogate" or not self.settings.get("task"):
            grow = 0
        grown_at = 0
        bar = None
        if progress:
            from tqdm.auto import tqdm

            bar = tqdm(total=budget, initial=min(budget, self.counts()["done"]), desc="search",
                       unit="eval")
        last_renew = time.monotonic()
        executor.start(evaluate)
        try:
            while True:
                counts = self.counts()
                want = budget - counts["done"] - counts["running"]
                free = executor.free_slots()
                claims = self.suggest(min(free, want)) if want > 0 and free > 0 else []
                for claim in claims:
                    executor.submit(claim.token, str(claim))
                    in_flight[claim.token] = claim
                if not in_flight:
                    if counts["done"] >= budget:
                        break
                    if counts["running"] == 0 and (want <= 0 or counts["pending"] == 0 or not claims
                                                   or not self._has_pending_candidate()):
                        # The pool is exhausted: nobody holds a claim and nothing is suggested.
                        # A growing pool takes in more of the space first, if it has any left.
                        if want > 0 and grow > 0:
                            added = len(self.grow(grow))
                            stats["grown"] += added
                            grown_at = stats["evaluated"]
                            if added:
                                continue
                        break
                    # Others hold the remaining claims: wait for their results or lease expiry.
                    time.sleep(min(1.0, max(poll_s, lease_s / 20)))
                    continue
                for outcome in executor.wait(poll_s):
                    claim = in_flight.pop(outcome.key)
                    if outcome.ok:
                        failures_in_row = 0
                        if self.tell(claim, outcome.score, runtime=outcome.runtime,
                                     **outcome.metrics):
                            stats["evaluated"] += 1
                            if bar is not None:
                                bar.update(1)
                                bar.set_postfix_str(f"{claim} {outcome.score:.4g}")
                        else:
                            stats["stale"] += 1
                    else:
                        stats["failed_attempts"] += 1
                        failures_in_row += 1
                        last_error = outcome.error
                        self.fail(claim, outcome.error)
                        if failures_in_row >= max_consecutive_failures:
                            raise StudyError(
                                f"{failures_in_row} evaluations in a row failed; the last one "
                                f"({claim}):\n{last_error.strip()}")
                if grow > 0 and stats["evaluated"] - grown_at >= grow_every:
                    grown_at = stats["evaluated"]
                    stats["grown"] += len(self.grow(grow))
                if in_flight and time.monotonic() - last_renew > lease_s / 3:
                    lost = len(in_flight) - self.renew(list(in_flight.values()))
                    stats["stale"] += max(0, lost)
                    last_renew = time.monotonic()
        except BaseException:
            keys = executor.stop()
            self.release([in_flight[k] for k in keys if k in in_flight])
            in_flight.clear()
            raise
        finally:
            if bar is not None:
                bar.close()
            if in_flight:
                self.release(list(in_flight.values()))
            executor.shutdown()
        stats.update(self.counts())
        return stats

    def _has_pending_candidate(self) -> bool:
        cand = self._pool_filter()
        return bool(self.store.query(
            f"SELECT 1 FROM classes WHERE status = 'pending' AND (baseline = 1 OR ({cand})) LIMIT 1"))
