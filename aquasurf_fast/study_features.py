"""A study's features and surrogate: the Fisher pool, its growth toward the best results, and
the embedding that every suggestion reads.

Output features cost microseconds, Fisher features up to seconds each: in a large space only a
pool of classes gets them. The pool starts as the baselines plus classes chosen to cover the
output-feature space (``coverage.choose_pool``), and during a search it grows by the classes
nearest the best results (``grow``). Every class in the pool with valid features is a surrogate
candidate; the embedding is recomputed when, and only when, that set changes.
"""
from __future__ import annotations

import json
import time
from typing import Any, Callable, Dict, List, Optional

import numpy as np

from .coverage import Projection, choose_pool, nearest_rows, take_turns
from .store import EmbeddingCache, StudyError, from_blob

# Without --pool: every class with finite outputs up to this many, else DEFAULT_POOL of them.
ALL_UP_TO = 10_000
DEFAULT_POOL = 5_000
GROW_FROM = 3         # growth looks around this many of the best results
GROW_SHORTLIST = 20   # classes per added one that the projection shortlists for the exact distance


class FeatureMixin:
    """The parts of ``Study`` that compute features, choose the pool and fit the surrogate."""

    def _bump_features(self) -> None:
        with self.store.transaction() as c:
            c.execute("UPDATE meta SET value = CAST(value AS INTEGER) + 1 "
                      "WHERE key = 'features_version'")
        self._features = None

    def set_fisher_features(self, names, feats: np.ndarray, ok=None, reasons=None) -> None:
        """Store Fisher features of classes (by any member's name); rows with ok False are invalid.
        The classes join the Fisher pool."""
        feats = np.asarray(feats, dtype=np.float32)
        if feats.ndim != 2 or feats.shape[0] != len(names):
            raise StudyError(f"expected Fisher features [{len(names)}, D], got {feats.shape}")
        if ok is None:
            ok = np.isfinite(feats).all(axis=1)
        if reasons is None:
            reasons = ["" if o else "non-finite Fisher features" for o in ok]
        dims = self.store.query("SELECT length(fisher_feat) FROM classes "
                                "WHERE fisher_feat IS NOT NULL LIMIT 1")
        if dims and np.any(ok) and dims[0][0] != feats.shape[1] * 4:
            raise StudyError(
                f"Fisher features have {feats.shape[1]} columns but this study's have "
                f"{dims[0][0] // 4}: they must come from the same task")
        ids = [self.store.class_of(n)[0] for n in names]
        self.store.set_fisher_features(ids, feats, ok, reasons)
        self._bump_features()

    # -- the pool ----------------------------------------------------------------------------------

    def _fill_output_features(self, where: str) -> int:
        """Compute and store the output features of the classes matching ``where`` that lack them."""
        rows = self.store.query(f"SELECT id, canonical FROM classes WHERE out_feat IS NULL AND ({where})")
        if rows:
            import aquasurf_fast as aq

            self.store.set_output_features([i for i, _ in rows],
                                           aq.output_features([name for _, name in rows]))
        return len(rows)

    def _ensure_projections(self) -> None:
        """Coordinates for classes that were added with features but before the study had a
        projection (the projection is fitted on them when there is none)."""
        rows = self.store.query("SELECT id, out_feat FROM classes WHERE out_finite = 1 AND "
                                "projection IS NULL AND out_feat IS NOT NULL")
        if not rows:
            return
        feats = np.stack([from_blob(blob) for _, blob in rows])
        projection = self.store_projection()
        if projection is None:
            projection = Projection.fit(feats[:, ::8][:20_000])
            with self.store.transaction() as c:
                self.store.put_array(c, "projection_basis", projection.basis)
        coords = projection.of_features(feats)
        with self.store.transaction() as c:
            c.executemany("UPDATE classes SET projection = ? WHERE id = ?",
                          [(row.astype("<f4").tobytes(), i) for (i, _), row in zip(rows, coords)])

    def choose_pool(self, n: Optional[int] = None, random_state: Optional[int] = None) -> int:
        """Put the baselines and ``n`` other classes with finite outputs in the Fisher pool, the
        ones already there included: every such class when there are at most ``ALL_UP_TO`` and
        ``n`` is None, else ``n`` (default ``DEFAULT_POOL``) chosen to cover the output-feature
        space. A larger ``n`` later adds to the pool. Returns how many classes joined."""
        n_finite = int(self.store.query("SELECT count(*) FROM classes WHERE out_finite = 1")[0][0])
        if n is not None and n < 0:
            raise StudyError(f"the pool size must be >= 0, got {n}")
        target = (n_finite if n_finite <= ALL_UP_TO else DEFAULT_POOL) if n is None else n
        round_ = int(self.store.query("SELECT coalesce(max(pool) + 1, 0) FROM classes")[0][0])
        with self.store.transaction() as c:
            joined = c.execute("UPDATE classes SET pool = ? WHERE baseline = 1 AND out_finite = 1 "
                               "AND pool IS NULL", (round_,)).rowcount
            if target >= n_finite:
                joined += c.execute("UPDATE classes SET pool = ? WHERE out_finite = 1 AND pool IS NULL",
                                    (round_,)).rowcount
        have = int(self.store.query("SELECT count(*) FROM classes WHERE pool IS NOT NULL AND "
                                    "baseline = 0 AND out_finite = 1")[0][0])
        if target < n_finite and target > have:
            self._ensure_projections()
            ids, coords, in_pool = self.store.projections()
            seed = int(self.settings["random_state"] if random_state is None else random_state)
            picks = choose_pool(coords, target - have, np.flatnonzero(in_pool), seed)
            self.store.add_to_pool(ids[picks].tolist(), round_)
            joined += len(picks)
        if joined:
            with self.store.transaction() as c:
                self.store.log(c, "pool", detail=json.dumps(
                    {"round": round_, "added": joined, "how": "coverage", "size": target}))
        return joined

    def grow(self, k: int, featurize: bool = True, progress: bool = False) -> List[str]:
        """Add to the pool the ``k`` classes not yet in it that are nearest, in output-feature
        space, to the best results (taking turns among the ``GROW_FROM`` best), and compute their
        features. The projection shortlists ``GROW_SHORTLIST`` x k classes per best result over the
        whole space; the exact distance over all 1,000 outputs picks among them. Returns the
        names that joined (the event log records them)."""
        best = self.store.query("SELECT id, canonical FROM classes WHERE status = 'done' AND "
                                "score IS NOT NULL AND out_finite = 1 ORDER BY score DESC, "
                                "eval_index LIMIT ?", (GROW_FROM,))
        if k <= 0 or not best:
            return []
        import aquasurf_fast as aq

        self._ensure_projections()
        ids, coords, in_pool = self.store.projections()
        row_of = {int(c): r for r, c in enumerate(ids.tolist())}
        names = dict(self.store.query("SELECT id, canonical FROM classes WHERE id IN (%s)"
                                      % ",".join(str(int(i)) for i, _ in best)))
        turns = []
        for class_id, name in best:
            if class_id not in row_of:
                continue
            shortlist = ids[nearest_rows(coords[row_of[class_id]], coords, GROW_SHORTLIST * k, in_pool)]
            if shortlist.size == 0:
                continue
            cand = dict(self.store.query("SELECT id, canonical FROM classes WHERE id IN (%s)"
                                         % ",".join(map(str, shortlist.tolist()))))
            feats = aq.output_features([names[class_id]] + [cand[int(i)] for i in shortlist])
            d2 = ((feats[1:].astype(np.float64) - feats[0]) ** 2).sum(axis=1)
            turns.append([int(i) for i in shortlist[np.lexsort((shortlist, d2))]])
        chosen = take_turns(turns, k)
        if not chosen:
            return []
        round_ = int(self.store.query("SELECT coalesce(max(pool) + 1, 0) FROM classes")[0][0])
        self.store.add_to_pool(chosen, round_)
        added = [n for _, n in self.store.query("SELECT id, canonical FROM classes WHERE id IN (%s)"
                                                 % ",".join(map(str, chosen)))]
        with self.store.transaction() as c:
            self.store.log(c, "pool", detail=json.dumps(
                {"round": round_, "added": len(chosen), "how": "grow",
                 "near": [n for _, n in best], "names": added}))
        if featurize:
            self.featurize(pool=0, progress=progress, embed=False)
        return added

    # -- featurizing -------------------------------------------------------------------------------

    def featurize(self, *, pool: Optional[int] = None, build: Optional[Callable] = None,
                  inputs: Any = None, targets: Any = None, featurizer: Optional[Callable] = None,
                  chunk: int = 128, seed: int = 42, device: Any = None, progress: bool = True,
                  embed: bool = True, executor=None) -> Dict[str, int]:
        """Choose the Fisher pool (``choose_pool(pool)``) and compute its missing output and
        Fisher features; resumable (each chunk is committed).

        ``build``/``inputs``/``targets`` default to the study's task. ``featurizer`` defaults to
        ``aq.fisher_features_for`` and is called as ``featurizer(build, names, inputs, targets,
        seed=..., device=..., progress=False) -> (features [n, D], ok [n], reasons [n])``.
        Classes whose outputs are not finite are never candidates and get no Fisher feature.
        With ``executor`` (worker processes, Ray) the chunks run as its jobs; workers load the
        study's task themselves, or receive ``build``/``inputs``/``targets``, which must then be
        picklable. With ``embed`` the surrogate's UMAP embedding is computed and stored at the end.
        """
        # Explicit classes added without features get them first: the pool is chosen among
        # classes whose outputs are known to be finite.
        n_out = self._fill_output_features("space_id IS NULL")
        self.choose_pool(pool)
        n_out += self._fill_output_features("pool IS NOT NULL")
        with self.store.transaction() as c:
            n_bad = c.execute(
                "UPDATE classes SET fisher_ok = 0, fisher_reason = 'non-finite output features' "
                "WHERE out_finite = 0 AND fisher_ok IS NULL AND space_id IS NULL").rowcount
        todo = self.store.query("SELECT id, canonical FROM classes WHERE pool IS NOT NULL AND "
                                "fisher_ok IS NULL AND out_finite = 1 ORDER BY pool, id")
        if todo:
            from .featurize import FisherChunkJob, run_chunks

            spec = self.settings.get("task")
            if (build is None or inputs is None) and not spec:
                raise StudyError("this study has no task: pass build, inputs and targets, or "
                                 "create the study with a task")
            job = FisherChunkJob(spec, build, inputs, targets, featurizer, seed, device)
            chunks = [[name for _, name in todo[i:i + chunk]] for i in range(0, len(todo), chunk)]
            bar = None
            if progress:
                from tqdm.auto import tqdm

                bar = tqdm(total=len(todo), desc="Fisher features", unit="fn")
            try:
                if executor is None:
                    for names in chunks:
                        self.set_fisher_features(names, *job(" ".join(names)))
                        if bar is not None:
                            bar.update(len(names))
                else:
                    run_chunks(executor, job, chunks, self.set_fisher_features,
                               int(self.settings["max_retries"]), bar)
            finally:
                if bar is not None:
                    bar.close()
        self._bump_features()
        if embed and self.counts()["candidates"]:
            # Fit UMAP now, once, so that the search's first surrogate suggestion does not keep every
            # worker waiting; the embedding is stored in the study for all processes.
            t0 = time.perf_counter()
            self.surrogate()
            if progress:
                print(f"embedded {self.counts()['candidates']} candidates in "
                      f"{time.perf_counter() - t0:.1f} s", flush=True)
        return {"output": n_out, "fisher": len(todo), "non_finite": n_bad}

    # -- candidates and the surrogate --------------------------------------------------------------

    def _has_fisher(self) -> bool:
        return bool(self.store.query("SELECT 1 FROM classes WHERE pool IS NOT NULL AND "
                                     "fisher_ok = 1 LIMIT 1"))

    def _candidate_filter(self) -> str:
        if self._has_fisher():
            return "pool IS NOT NULL AND out_finite = 1 AND fisher_ok = 1"
        # Without any Fisher feature (no model to featurize), the output features alone embed:
        # those of the pool when there is one, else of every class (an explicit, small space).
        if self.store.pool_size():
            return "pool IS NOT NULL AND out_finite = 1"
        return "out_finite = 1 AND space_id IS NULL"

    def _pool_filter(self) -> str:
        """The classes that suggestions are drawn from (besides the baselines)."""
        if self.settings.get("order") == "exhaustive":
            return "out_finite = 1"
        return self._candidate_filter()

    def _candidate_features(self):
        """(class ids, output features, Fisher features or None), cached until features change."""
        version = self.store.query("SELECT value FROM meta WHERE key = 'features_version'")[0][0]
        if self._features is not None and self._features[0] == version:
            return self._features[1:]
        use_fisher = self._has_fisher()
        where = self._candidate_filter()
        self._fill_output_features(where)
        rows = self.store.query(f"SELECT id, out_feat, fisher_feat FROM classes WHERE {where} ORDER BY id")
        ids = np.array([r[0] for r in rows], dtype=np.int64)
        out = (np.stack([from_blob(r[1]) for r in rows]) if rows
               else np.zeros((0, 1000), dtype=np.float32))
        fisher = None
        if use_fisher:
            fisher = (np.stack([from_blob(r[2]) for r in rows]) if rows
                      else np.zeros((0, 1), dtype=np.float32))
        self._features = (version, ids, out, fisher)
        return ids, out, fisher

    def surrogate(self):
        """A Surrogate fitted on the current results (embedding from the study's cache). A new
        embedding (the candidates changed) is logged with the seconds it took."""
        from .surrogate import Surrogate

        meta = self.settings
        if self._surrogate is None:
            self._surrogate = Surrogate(cache=EmbeddingCache(self.store))
        if self._regressor_instance is None and meta["regressor"] == "custom":
            raise StudyError("this study was created with a regressor instance, which is not "
                             "stored in the file: pass it again, Study(path, regressor=...)")
        self._surrogate.regressor = self._regressor_instance or meta["regressor"]
        self._surrogate.random_state = meta["random_state"]
        ids, out, fisher = self._candidate_features()
        done = dict(self.store.query(
            "SELECT id, score FROM classes WHERE status = 'done' AND score IS NOT NULL"))
        pos = {cid: i for i, cid in enumerate(ids.tolist())}
        idx = [pos[c] for c in done if c in pos]
        scores = [done[ids[i]] for i in idx]
        self._surrogate.fit(out, fisher, idx, scores)
        self._surrogate.class_ids_ = ids
        if self._surrogate.embed_seconds_ is not None:
            with self.store.transaction() as c:
                self.store.log(c, "embed", owner=self.owner, detail=json.dumps(
                    {"candidates": int(ids.size), "seconds": round(self._surrogate.embed_seconds_, 3)}))
        return self._surrogate

    def predictions(self) -> Dict[int, float]:
        """Predicted score per candidate class id (NaN before any finite result)."""
        s = self.surrogate()
        return dict(zip(s.class_ids_.tolist(), s.predict().tolist()))
