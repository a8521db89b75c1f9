"""Property-based test of the store: random interleavings of suggest, tell, fail, release, renew and
lease expiry by three workers on one study file, checked against a model of what each call must do.
At the end every class is done once (or failed), and every result told first is the one stored."""
import atexit
import os
import shutil
import sqlite3
import tempfile

from hypothesis import settings, strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

import aquasurf_fast as aq
from search_helpers import make_study
from sql_helpers import sql

N_WORKERS = 3
MAX_RETRIES = 1


_TEMPLATE = []
# Commits cost a disk sync each; in memory (where there is a tmpfs) a step takes a tenth as long.
TMP = "/dev/shm" if os.access("/dev/shm", os.W_OK) else None


def template_study():
    """A closed study file that each interleaving starts from as a copy (building one takes
    longer than the interleaving). "exhaustive" order: no surrogate to fit, so that a step costs
    a few transactions."""
    if not _TEMPLATE:
        folder = tempfile.mkdtemp(dir=TMP)
        atexit.register(shutil.rmtree, folder, True)
        path = f"{folder}/template.db"
        make_study(path, n_extra=1, order="exhaustive", max_retries=MAX_RETRIES,
                   lease_s=3600.0).close()
        _TEMPLATE.append(path)
    return _TEMPLATE[0]


class StoreInterleavings(RuleBasedStateMachine):
    """Three ``Study`` objects (workers) on one file; the model holds each class's status, its
    current claim token, its failed attempts and the first score told for it."""

    def __init__(self):
        super().__init__()
        self.dir = tempfile.mkdtemp(dir=TMP)
        path = f"{self.dir}/s.db"
        shutil.copy(template_study(), path)
        self.workers = [aq.Study(path, owner=f"w{i}") for i in range(N_WORKERS)]
        names = [r["name"] for r in self.workers[0].results(include_pending=True)]
        self.status = {name: "pending" for name in names}
        self.token = {name: None for name in names}
        self.attempts = {name: 0 for name in names}
        self.score = {}
        self.expired = set()  # leases ended (a hung worker); the next suggest returns them
        self.held = [[] for _ in range(N_WORKERS)]  # each worker's claims, current or stale
        self.n_told = 0

    def teardown(self):
        try:
            self.finish()
        finally:
            for study in self.workers:
                study.close()
            shutil.rmtree(self.dir, ignore_errors=True)

    def _claim(self, worker, pick):
        claims = self.held[worker]
        return claims[pick % len(claims)]

    def _current(self, claim):
        return self.status[claim] == "running" and self.token[claim] == claim.token

    @rule(worker=st.integers(0, N_WORKERS - 1), n=st.integers(1, 3))
    def suggest(self, worker, n):
        for name in self.expired:
            if self.status[name] == "running":
                self.status[name], self.token[name] = "pending", None
        self.expired.clear()
        pending = sum(s == "pending" for s in self.status.values())
        claims = self.workers[worker].suggest(n)
        assert len(claims) == min(n, pending)
        assert len(set(claims)) == len(claims)
        for claim in claims:
            assert self.status[claim] == "pending", (claim, self.status[claim])
            self.status[claim], self.token[claim] = "running", claim.token
            self.held[worker].append(claim)

    @rule(worker=st.integers(0, N_WORKERS - 1), pick=st.integers(0, 100), keep=st.booleans())
    def tell(self, worker, pick, keep):
        """Any worker may tell any name; ``keep``: a worker that tells again later (a duplicate)."""
        if not self.held[worker]:
            return
        claim = self._claim(worker, pick)
        self.n_told += 1
        score = self.n_told / 1000.0
        first = self.status[claim] != "done"
        assert self.workers[worker].tell(claim, score, loss=score) == first
        if first:
            self.status[claim], self.token[claim] = "done", None
            self.score[str(claim)] = score
            self.expired.discard(str(claim))
        if not keep:
            self.held[worker].remove(claim)

    def _fail(self, worker, claim):
        self.held[worker].remove(claim)
        ignored = self.status[claim] == "done" or (
            self.token[claim] is not None and self.token[claim] != claim.token)
        got = self.workers[worker].fail(claim, "diverged")
        if ignored:
            assert got is None
            return
        self.attempts[claim] += 1
        want = "failed" if self.attempts[claim] > MAX_RETRIES else "pending"
        assert got == want
        self.status[claim], self.token[claim] = want, None
        self.expired.discard(str(claim))

    def _release(self, worker, claim):
        self.held[worker].remove(claim)
        current = self._current(claim)
        assert self.workers[worker].release([claim]) == int(current)
        if current:
            self.status[claim], self.token[claim] = "pending", None
            self.expired.discard(str(claim))

    def _renew(self, worker, claim):
        current = self._current(claim)
        assert self.workers[worker].renew([claim]) == int(current)
        if current:
            self.expired.discard(str(claim))  # renewed before anyone saw the lease end

    def _expire(self, worker, claim):
        """The lease of a claim ends, as when its worker hangs past ``lease_s``."""
        with sqlite3.connect(self.workers[0].path) as db:
            db.execute("UPDATE classes SET lease_until = 0 WHERE claim_token = ? AND "
                       "status = 'running'", (claim.token,))
        db.close()
        if self._current(claim):
            self.expired.add(str(claim))

    @rule(worker=st.integers(0, N_WORKERS - 1), pick=st.integers(0, 100),
          action=st.sampled_from(["fail", "release", "renew", "expire"]))
    def act_on_a_claim(self, worker, pick, action):
        """A worker fails, releases, renews or outlives one of its claims, current or stale."""
        if self.held[worker]:
            getattr(self, f"_{action}")(worker, self._claim(worker, pick))

    @invariant()
    def the_file_agrees_with_the_model(self):
        rows = sql(self.workers[0], "SELECT canonical, status, score FROM classes")
        for name, status, score in rows:
            want = self.status[name]
            # An ended lease is still 'running' in the file until a suggest collects it.
            assert status == want, (name, status, want)
            if status == "done":
                assert score == self.score[name]
        results = sql(self.workers[0], "SELECT class_id FROM events WHERE kind = 'result'")
        assert len(results) == len({r[0] for r in results}) == len(self.score)

    def finish(self):
        """Every class is evaluated once, or failed, after one worker takes what is left."""
        for worker, claims in enumerate(self.held):  # the workers still at work finish
            for claim in claims:
                if self._current(claim):
                    assert self.workers[worker].tell(claim, 0.25)
                    self.status[claim] = "done"
                    self.score[str(claim)] = 0.25
        study = self.workers[0]
        while True:
            claims = study.suggest(4)
            if not claims:
                break
            for claim in claims:
                assert study.tell(claim, 0.5)
                self.score.setdefault(str(claim), 0.5)
        counts = study.counts()
        assert counts["running"] == 0 and counts["pending"] == 0
        assert counts["done"] + counts["failed"] == len(self.status)
        stored = {r["name"]: r["score"] for r in study.results() if r["status"] == "done"}
        assert stored == self.score


# Each step is a few SQLite transactions (about 2 ms in memory): 150 interleavings take seconds.
StoreInterleavings.TestCase.settings = settings(max_examples=150, stateful_step_count=20,
                                                deadline=None)
test_store_interleavings = StoreInterleavings.TestCase
