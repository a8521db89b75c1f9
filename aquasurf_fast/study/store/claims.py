"""Claims with leases, results written once, and failures counted: what lets several workers
share a study.

Together with ``BEGIN IMMEDIATE`` transactions, the rules of ``record_result`` (a result is written
once; a failure report from a claim that is no longer current is ignored) make sure that no
interleaving of processes loses a result or overwrites one.
"""
from __future__ import annotations

import json
import math
import sqlite3
import time
import uuid
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np

from .database import Database, StudyError
from .events import EventLog


def _metrics_json(metrics: Mapping[str, Any]) -> str:
    """The metrics as JSON text. Infinities and NaN are written as Python's json writes them
    (``Infinity``, ``-Infinity``, ``NaN``) so that ``json.loads`` reads them back as they were;
    nothing reads this column with SQLite's JSON functions, which would refuse them."""
    clean = {}
    for key, value in metrics.items():
        if isinstance(value, (np.generic,)):
            value = value.item()
        if not isinstance(value, (int, float, str, bool, type(None))):
            raise StudyError(
                f"metric {key!r} must be a number, string, bool or None, got {type(value).__name__}"
            )
        clean[str(key)] = value
    return json.dumps(clean, sort_keys=True, allow_nan=True)


class ClaimTables:
    """The claim, result and failure columns of ``classes`` (a part of ``Store``). Holds the
    ``Database`` and the ``EventLog`` that records each claim, result and failure."""

    def __init__(self, db: Database, events: EventLog):
        self.db = db
        self.events = events

    def expire_leases(self, c: sqlite3.Connection, now: float) -> int:
        """Return the candidates of dead or hung workers to the pool (inside a transaction)."""
        stale = c.execute(
            "SELECT id, claim_owner FROM classes WHERE status = 'running' AND lease_until < ?",
            (now,)).fetchall()
        for class_id, owner in stale:
            c.execute(
                "UPDATE classes SET status = 'pending', claim_token = NULL, claim_owner = NULL, "
                "claimed_at = NULL, lease_until = NULL WHERE id = ?", (class_id,))
            self.events.log(c, "lease_expired", class_id, owner)
        return len(stale)

    def expire_leases_now(self) -> int:
        """``expire_leases`` in a transaction of its own."""
        with self.db.transaction() as c:
            return self.expire_leases(c, time.time())

    def status_of(self, class_id: int) -> str:
        """The status of a class: "pending", "running", "done" or "failed"."""
        return self.db.query("SELECT status FROM classes WHERE id = ?", (int(class_id),))[0][0]

    def claim_pending(self, class_ids: Sequence[int], n: int, owner: str,
                      lease_s: float) -> List[Tuple[int, str, str, float]]:
        """Claim the first ``n`` of ``class_ids`` that are pending, in one transaction that first
        expires the leases run out. Returns (class id, canonical name, token, lease end) of each."""
        claimed: List[Tuple[int, str, str, float]] = []
        with self.db.transaction() as c:
            now = time.time()
            self.expire_leases(c, now)
            taken = set()
            for class_id in class_ids:
                if len(claimed) == n:
                    break
                # One status read per class tried, not a list of every pending class: a large
                # space holds millions.
                if class_id in taken or c.execute("SELECT status FROM classes WHERE id = ?",
                                                  (class_id,)).fetchone()[0] != "pending":
                    continue
                taken.add(class_id)
                token = self.claim(c, class_id, owner, lease_s, now)
                name = c.execute("SELECT canonical FROM classes WHERE id = ?",
                                 (class_id,)).fetchone()[0]
                claimed.append((class_id, name, token, now + lease_s))
        return claimed

    def scores(self) -> Dict[int, float]:
        """The evaluated classes' scores (those with one), by class id."""
        return dict(self.db.query(
            "SELECT id, score FROM classes WHERE status = 'done' AND score IS NOT NULL"))

    def evaluated_and_running(self) -> Tuple[Dict[int, Optional[float]], List[int]]:
        """(the score of every evaluated class, None where it has none, by id; the ids of the
        classes being evaluated)."""
        rows = self.db.query("SELECT id, status, score FROM classes WHERE status IN "
                             "('done', 'running')")
        return ({cid: score for cid, st, score in rows if st == "done"},
                [cid for cid, st, _ in rows if st == "running"])

    def claim(self, c: sqlite3.Connection, class_id: int, owner: str, lease_s: float,
              now: float) -> str:
        token = uuid.uuid4().hex
        c.execute(
            "UPDATE classes SET status = 'running', claim_token = ?, claim_owner = ?, "
            "claimed_at = ?, lease_until = ? WHERE id = ? AND status = 'pending'",
            (token, owner, now, now + lease_s, class_id))
        self.events.log(c, "claim", class_id, owner, token)
        return token

    def renew(self, tokens: Sequence[str], lease_s: float) -> int:
        """Extend the leases of claims still held; returns how many were."""
        now = time.time()
        with self.db.transaction() as c:
            n = 0
            for token in tokens:
                n += c.execute(
                    "UPDATE classes SET lease_until = ? WHERE claim_token = ? AND status = 'running'",
                    (now + lease_s, token)).rowcount
        return n

    def release(self, tokens: Sequence[str], owner: Optional[str] = None) -> int:
        """Give claims back unevaluated (a clean stop): their candidates return to the pool."""
        with self.db.transaction() as c:
            n = 0
            for token in tokens:
                row = c.execute("SELECT id FROM classes WHERE claim_token = ? AND status = 'running'",
                                (token,)).fetchone()
                if row is None:
                    continue
                c.execute(
                    "UPDATE classes SET status = 'pending', claim_token = NULL, claim_owner = NULL, "
                    "claimed_at = NULL, lease_until = NULL WHERE id = ?", (row[0],))
                self.events.log(c, "release", row[0], owner)
                n += 1
        return n

    def record_result(self, class_id: int, score: float, metrics: Mapping[str, Any],
                      runtime: Optional[float], token: Optional[str], owner: Optional[str]) -> bool:
        """Write a class's result once. Returns False (and logs it) when it already has one.

        A result from a worker whose lease expired is still accepted while the class has none: the
        training happened and its result is as good as any. What a stale worker can never do is
        replace a result that is already written.
        """
        metrics_text = _metrics_json(metrics)
        now = time.time()
        with self.db.transaction() as c:
            row = c.execute("SELECT status, claim_token FROM classes WHERE id = ?",
                            (class_id,)).fetchone()
            if row is None:
                raise StudyError(f"class {class_id} is not in this study")
            if row[0] == "done":
                self.events.log(c, "duplicate_result", class_id, owner,
                                json.dumps({"score": score if math.isfinite(score) else None}))
                return False
            eval_index = c.execute(
                "SELECT coalesce(max(eval_index), 0) + 1 FROM classes").fetchone()[0]
            c.execute(
                "UPDATE classes SET status = 'done', score = ?, metrics = ?, runtime = ?, "
                "error = NULL, finished_at = ?, eval_index = ?, claim_token = NULL, "
                "claim_owner = NULL, claimed_at = NULL, lease_until = NULL WHERE id = ?",
                (score if math.isfinite(score) else None, metrics_text, runtime, now, eval_index,
                 class_id))
            stale = token is not None and row[1] != token
            self.events.log(c, "result", class_id, owner, json.dumps(
                {"score": score if math.isfinite(score) else None, "stale_claim": stale}))
        return True

    def record_failure(self, class_id: int, error: str, token: Optional[str],
                       owner: Optional[str], max_retries: int) -> Optional[str]:
        """Count a failed attempt; the class returns to the pool until it has failed too often.

        A report from a claim that is no longer current is logged and otherwise ignored, so that a
        stale worker cannot undo the claim of the worker that took over. Returns the new status, or
        None when the report was ignored.
        """
        with self.db.transaction() as c:
            row = c.execute("SELECT status, claim_token, attempts FROM classes WHERE id = ?",
                            (class_id,)).fetchone()
            if row is None:
                raise StudyError(f"class {class_id} is not in this study")
            status, current, attempts = row
            if status == "done" or (token is not None and current is not None and current != token):
                self.events.log(c, "stale_failure", class_id, owner, error[-2000:])
                return None
            attempts += 1
            new_status = "failed" if attempts > max_retries else "pending"
            c.execute(
                "UPDATE classes SET status = ?, attempts = ?, error = ?, claim_token = NULL, "
                "claim_owner = NULL, claimed_at = NULL, lease_until = NULL, finished_at = ? "
                "WHERE id = ?", (new_status, attempts, error[-20000:], time.time(), class_id))
            self.events.log(c, "failure", class_id, owner, error[-2000:])
        return new_status

