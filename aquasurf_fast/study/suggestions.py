"""Suggest and tell: a study's candidates are claimed (``Claims.suggest``), and each claim ends
in a result, a failure, or its release; a ``Claim`` is a name that carries its claim.

Suggestions are claims: a claimed class is ``running`` with a lease that the holder renews while it
trains. A holder that dies stops renewing, the lease runs out, and the next ``suggest`` anywhere puts
the class back in the pool. Results belong to the whole equivalence class.
"""
from __future__ import annotations

from typing import Any, List, Optional, Sequence

from .store import StudyError


class Claim(str):
    """A suggested name (the class's canonical member) that carries its claim.

    It is a ``str``, so it can be passed wherever a name is expected; ``tell`` uses its token to tell
    a current claim from a stale one.
    """

    token: str
    class_id: int
    lease_until: float

    def __new__(cls, name: str, token: str, class_id: int, lease_until: float):
        obj = super().__new__(cls, name)
        obj.token, obj.class_id, obj.lease_until = token, class_id, lease_until
        return obj

    def __reduce__(self):
        # str's own reduction would call ``Claim(name)`` without the claim's fields, so a claim
        # could not travel to a worker process or a Ray task.
        return (Claim, (str(self), self.token, self.class_id, self.lease_until))


class Claims:
    """A study's suggest and tell (the part of ``Study`` behind ``suggest``, ``tell``, ``fail``,
    ``release`` and ``renew``): claims in ``store``, ranked by ``ranker``, made for ``owner``."""

    def __init__(self, store, ranker, owner: str):
        self.store, self.ranker, self.owner = store, ranker, owner

    def suggest(self, n: int = 1, owner: Optional[str] = None) -> List[Claim]:
        """Claim up to ``n`` classes to evaluate: pending baselines first, then the top predicted.

        Returns their canonical names as ``Claim`` objects (fewer when the pool runs dry).
        """
        if n < 1:
            return []
        owner = owner or self.owner
        lease_s = float(self.store.meta()["lease_s"])
        self.store.expire_leases_now()
        base_ids = self.ranker.baseline_ids()
        pending_base = [cid for cid in base_ids if self.store.status_of(cid) == "pending"]
        # The surrogate is fitted outside the write lock: the first fit of a large space takes a
        # while (UMAP), and other processes must keep writing meanwhile. The ranking is re-checked
        # against the statuses when the claims are written.
        ranking = [] if len(pending_base) >= n else self.ranker.ranking(n - len(pending_base))
        claims = [Claim(name, token, cid, lease_until) for cid, name, token, lease_until
                  in self.store.claim_pending(base_ids + ranking, n, owner, lease_s)]
        return claims

    def tell(self, name: str, score: float, runtime: Optional[float] = None, **metrics: Any) -> bool:
        """Record the score of ``name`` for its whole class. Returns False if it already had one.

        ``name`` may be a ``Claim`` from ``suggest`` or any member name of a class.
        """
        class_id = self._class_id(name)
        try:
            score = float(score)
        except (TypeError, ValueError):
            raise StudyError(f"score must be a number, got {score!r}") from None
        return self.store.record_result(class_id, score, metrics, runtime,
                                        getattr(name, "token", None), self.owner)

    def fail(self, name: str, error: str) -> Optional[str]:
        """Record a failed evaluation; returns 'pending' (will be retried), 'failed', or None."""
        class_id = self._class_id(name)
        return self.store.record_failure(class_id, str(error), getattr(name, "token", None),
                                         self.owner, int(self.store.meta()["max_retries"]))

    def _class_id(self, name: str) -> int:
        """The class of a ``Claim`` (carried with it) or of any member name."""
        class_id = getattr(name, "class_id", None)
        return self.store.class_of(str(name))[0] if class_id is None else class_id

    def release(self, claims: Sequence[Claim]) -> int:
        """Give claims back unevaluated."""
        return self.store.release([c.token for c in claims], self.owner)

    def renew(self, claims: Sequence[Claim]) -> int:
        """Extend the leases of claims still being worked on."""
        return self.store.renew([c.token for c in claims], float(self.store.meta()["lease_s"]))


__all__ = ["Claim", "Claims"]
