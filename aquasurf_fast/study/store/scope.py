"""Which classes a question is about: a ``Scope``, named for what it holds, instead of a WHERE
clause handed around.

The parts of a study ask the store for "the candidates" or "the classes of the Fisher pool"; only
the store knows what condition on the ``classes`` table that is. A ``Scope`` is a closed set:
a part cannot pass a condition of its own.
"""
from __future__ import annotations

import enum


class Scope(enum.Enum):
    """A set of classes of a study. The value is the condition on ``classes`` that the store
    reads it by (the store's alone: nothing outside ``study/store`` reads it)."""

    #: every class with finite outputs
    FINITE = "out_finite = 1"
    #: the classes of explicit names (not of a schema or names file)
    EXPLICIT = "space_id IS NULL"
    #: the classes of explicit names with finite outputs
    EXPLICIT_FINITE = "out_finite = 1 AND space_id IS NULL"
    #: the Fisher pool
    POOL = "pool IS NOT NULL"
    #: the Fisher pool's classes with finite outputs
    POOL_FINITE = "pool IS NOT NULL AND out_finite = 1"
    #: the Fisher pool's classes with finite outputs and valid Fisher features
    POOL_WITH_FISHER = "pool IS NOT NULL AND out_finite = 1 AND fisher_ok = 1"
    #: the classes trained or in training
    TRAINED_OR_RUNNING = "status IN ('done', 'running')"

    @classmethod
    def of(cls, scope: "Scope | str") -> "Scope":
        """``scope``, or the scope whose condition the string ``scope`` is (a caller written before
        scopes existed); any other string is refused."""
        if isinstance(scope, cls):
            return scope
        try:
            return cls(scope)
        except ValueError:
            raise ValueError(f"{scope!r} is not a scope of classes: use one of "
                             f"{', '.join(s.name for s in cls)}") from None


HAS_FISHER = "SELECT 1 FROM classes WHERE pool IS NOT NULL AND fisher_ok = 1 LIMIT 1"


def candidate_scope(db) -> Scope:
    """The surrogate's candidates in the study ``db`` (a ``Store`` or a ``StudyReader``): the pool's
    classes with valid Fisher features; without any Fisher feature (no model to featurize), the
    output features alone embed, those of the pool when there is one, else of every explicit class
    (an explicit, small space)."""
    if db.has_fisher():
        return Scope.POOL_WITH_FISHER
    if db.pool_size():
        return Scope.POOL_FINITE
    return Scope.EXPLICIT_FINITE


__all__ = ["Scope", "candidate_scope"]
