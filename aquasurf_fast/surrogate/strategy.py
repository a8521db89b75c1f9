"""Search strategies: which unevaluated candidates to train next, given the evaluated ones.

A strategy ranks candidates from their 2-D UMAP layouts (``layouts``: float32 [M, n, 2], see
``embedding.compute_layouts``; the hybrid and the adaptive strategy also from their
``output_points``), the positions already evaluated with their scores, and the positions claimed
by other workers whose results are not known yet (``pending``). ``Study.suggest``,
``aquasurf search``, ``quickstart``, ``bench replay`` and the Optuna sampler all rank through here,
so a replayed strategy is the strategy a search runs.

- ``"ensemble"``: after the baselines, ``N_SPREAD`` candidates spread over the layout
  by D² sampling (k-means++ seeding: each next one drawn with probability proportional to its squared
  distance from everything chosen so far), then the best mean prediction of a regressor fitted on
  each of ``N_LAYOUTS`` UMAP layouts of the same fuzzy graph (the 3 nearest neighbours weighted by
  inverse distance by default). One layout puts similar functions far apart by chance; the mean over
  several does not. Pending candidates count as scoring the mean of the known scores (a "constant
  liar"), so that parallel workers do not all train the same neighbourhood.
- ``"hybrid"``: the ensemble's first picks, then its picks alternate between the
  mean prediction over the ensemble's layouts and the same regressor fitted on the candidates'
  squashed output features (``output_points``: the values at every ``OUTPUT_STRIDE``-th probe
  input, clipped and log-compressed as the Fisher pool's projection does), where nothing is lost
  to a 2-D layout. The ensemble alone crawls where the landscape is smooth; the output space alone
  rarely finds the very best class; taking turns keeps what each does well. Its regressor is the
  paper's (the 3 nearest neighbours, uniform weights), as it was measured.
- ``"adaptive"``: the baselines and ``ADAPTIVE_SPREAD`` spread picks, then each pick from one of
  two k-NN models, the ensemble's layouts or the output points, drawn with probabilities that
  fall with the model's leave-one-out error on the evaluated classes (``surrogate.adaptive``): it
  learns from the task's own results which representation predicts there. A pick maximises the
  model's mean plus ``ADAPTIVE_KAPPA`` calibrated deviations; pending candidates are only
  excluded, as the paper's strategy does, so parallel workers cost little.
- ``"paper"`` (the default, chosen by the leave-one-out rule of benchmarks/README.md): the paper's
  strategy (Bingham & Miikkulainen 2023): the best prediction of a 3-NN regressor on one layout;
  pending candidates are only excluded.
- ``"random"``: uniform random order.

Why these and not others, with the replays that chose them: benchmarks/README.md.
"""
from __future__ import annotations

from dataclasses import dataclass, fields, replace
from typing import Any, Dict, Iterable, List, Optional

import numpy as np

STRATEGY_NAMES = ("adaptive", "ensemble", "hybrid", "paper", "random")
DEFAULT_STRATEGY = "paper"
N_LAYOUTS = 5   # layouts the ensemble averages over
N_SPREAD = 8    # candidates the ensemble spreads over the layout after the baselines
OUTPUT_STRIDE = 2  # the hybrid's output space reads every 2nd of the 1,000 probe inputs
ADAPTIVE_SPREAD = 4    # spread picks of the adaptive strategy after the baselines
ADAPTIVE_KAPPA = 0.0   # calibrated deviations added to its mean predictions (0: greedy, as tuned)
ADAPTIVE_POWER = 2.0   # its models are drawn with probability ~ (1 / leave-one-out error) ** this


def output_points(out_feats: np.ndarray) -> np.ndarray:
    """float32 [n, 1000 / OUTPUT_STRIDE]: the candidates in the hybrid strategy's output space."""
    from .coverage import squash

    return squash(np.asarray(out_feats)[:, ::OUTPUT_STRIDE]).astype(np.float32)


def spread_picks(coords: np.ndarray, chosen: np.ndarray, n: int, rng: np.random.Generator) -> list:
    """``n`` positions drawn by D² sampling over ``coords`` [n_points, d]: each with probability
    proportional to its squared distance from ``chosen`` and the picks before it (uniform when
    nothing is chosen yet). Points at distance 0 (chosen ones, duplicates) are never drawn."""
    coords = np.asarray(coords, dtype=np.float64)
    picks: list = []
    if len(chosen):
        d2 = np.full(len(coords), np.inf)
        for c in np.asarray(chosen, dtype=np.int64):
            d2 = np.minimum(d2, ((coords - coords[c]) ** 2).sum(axis=1))
    else:
        d2 = np.ones(len(coords))
    for _ in range(n):
        total = d2.sum()
        if not np.isfinite(total) or total <= 0.0:
            break  # every point coincides with a chosen one
        pick = int(rng.choice(len(coords), p=d2 / total))
        picks.append(pick)
        d2 = np.minimum(d2, ((coords - coords[pick]) ** 2).sum(axis=1))
    return picks


def _order(scores: np.ndarray, taken: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Positions not ``taken``, best score first; ties in a random order."""
    free = np.flatnonzero(~taken)
    key = np.where(np.isfinite(scores[free]), scores[free], -np.inf)
    return free[np.lexsort((rng.permutation(free.size), -key))]


@dataclass(frozen=True)
class AdaptiveSettings:
    """The adaptive strategy's tunable settings (the module's ``ADAPTIVE_*`` by default)."""

    spread: int = ADAPTIVE_SPREAD
    kappa: float = ADAPTIVE_KAPPA
    power: float = ADAPTIVE_POWER


def parse_variant(spec: str):
    """(strategy name, AdaptiveSettings) from ``NAME`` or ``adaptive:spread=0:kappa=1`` (colons,
    not commas: strategies are listed with commas)."""
    name, _, params = spec.partition(":")
    settings = AdaptiveSettings()
    if not params:
        return name, settings
    if name != "adaptive":
        raise ValueError(f"only the adaptive strategy has settings, not {name!r} ({spec!r})")
    known = {f.name: f.type for f in fields(AdaptiveSettings)}
    values = {}
    for item in params.split(":"):
        key, eq, value = item.partition("=")
        if not eq or key.strip() not in known:
            raise ValueError(f"{spec!r}: settings are {', '.join(known)} as key=value, "
                             "joined by ':'")
        try:
            values[key.strip()] = (int if key.strip() == "spread" else float)(value)
        except ValueError:
            raise ValueError(f"{spec!r}: {key.strip()} must be a number") from None
    return name, replace(settings, **values)


class Strategy:
    """A search strategy (see the module docstring): one class per strategy, each owning its
    ranking, behind one interface (``n_layouts``, ``needs_points``, ``rank``, ``predict``).

    ``Strategy(name, regressor)`` constructs the named strategy's class (``PaperStrategy`` for
    "paper", ...): the only place a strategy's name is looked at. ``regressor``: a name of
    ``regression.REGRESSOR_NAMES`` or a scikit-learn regressor instance (cloned before each fit);
    None takes the strategy's own (3-NN, weighted by inverse distance in the ensemble, uniform in
    the hybrid and the paper's). ``adaptive``: the adaptive strategy's settings.
    """

    name = ""
    n_layouts = 0          # how many layouts ``rank`` reads (0: none)
    needs_points = False   # whether ``rank`` reads the candidates' ``output_points`` too
    # Whether a study ranks by the surrogate's own single embedding (the paper's way) rather than
    # by ``n_layouts`` layouts of the candidates' fuzzy graph.
    ranks_by_surrogate = False
    default_regressor = "knn"

    def __new__(cls, name: str = DEFAULT_STRATEGY, regressor: Any = None,
                adaptive: Optional[AdaptiveSettings] = None):
        if cls is Strategy:
            if name not in _CLASSES:
                raise ValueError(f"unknown strategy {name!r}: use one of "
                                 f"{', '.join(STRATEGY_NAMES)}")
            cls = _CLASSES[name]
        return super().__new__(cls)

    def __init__(self, name: str = DEFAULT_STRATEGY, regressor: Any = None,
                 adaptive: Optional[AdaptiveSettings] = None):
        self.regressor = self.default_regressor if regressor is None else regressor
        self.adaptive = adaptive or AdaptiveSettings()

    def __repr__(self) -> str:
        return f"Strategy({self.name!r}, regressor={self.regressor!r})"

    def rank(self, layouts: Optional[np.ndarray], evaluated: np.ndarray, scores: np.ndarray,
             pending: np.ndarray, n_start: int, n: int, rng: np.random.Generator,
             n_candidates: Optional[int] = None, points: Optional[np.ndarray] = None) -> np.ndarray:
        """Candidate positions neither evaluated nor pending, the next to train first.

        ``layouts`` [M, n_candidates, 2] (M >= ``n_layouts``; random search takes ``n_candidates``
        instead); ``evaluated`` and ``scores`` the evaluated positions and their scores
        (non-finite ones are failures and left out of the fit); ``pending`` the positions claimed
        and not yet scored; ``n_start`` how many of the evaluated and pending are the baselines
        the caller placed first; ``n`` how many will be taken from the front (each chosen knowing
        the ones before it are pending); ``points`` the candidates' ``output_points``, which the
        hybrid and adaptive strategies need.
        """
        evaluated = np.asarray(evaluated, dtype=np.int64)
        scores = np.asarray(scores, dtype=np.float64)
        pending = np.asarray(pending, dtype=np.int64)
        n_cand = n_candidates if layouts is None else layouts.shape[1]
        self._check_inputs(layouts, n_cand, points)
        taken = np.zeros(n_cand, dtype=bool)
        taken[evaluated] = True
        taken[pending] = True
        ok = np.isfinite(scores)
        return self._rank(layouts, evaluated[ok], scores[ok], pending, taken, n_start, max(n, 1),
                          rng, points)

    def _check_inputs(self, layouts, n_cand, points) -> None:
        if n_cand is None or (layouts is None and self.n_layouts):
            raise ValueError(f"the {self.name} strategy ranks candidates by their layouts: pass "
                             f"{self.n_layouts or 'n_candidates or'} layout(s)")
        if layouts is not None and len(layouts) < self.n_layouts:
            raise ValueError(f"the {self.name} strategy needs {self.n_layouts} layouts, got "
                             f"{len(layouts)}")
        if self.needs_points and (points is None or len(points) != n_cand):
            raise ValueError(f"the {self.name} strategy needs the output points of all {n_cand} "
                             "candidates (output_points of their output features)")

    def _rank(self, layouts, evaluated, scores, pending, taken, n_start, n, rng, points):
        raise NotImplementedError

    def predict(self, layouts: np.ndarray, idx: np.ndarray, y: np.ndarray) -> np.ndarray:
        """The mean prediction over ``layouts`` [M, n, d] (2-D layouts, or output points) of the
        regressor fitted on the positions ``idx`` with finite scores ``y``; zeros while the scores
        do not differ (nothing to learn: the random tie order decides)."""
        from .regression import make_regressor

        n = layouts.shape[1]
        if idx.size < 2 or np.ptp(y) == 0.0:
            return np.zeros(n)
        pred = np.zeros(n)
        for coords in layouts:
            model = make_regressor(self.regressor, 0, idx.size)
            x = np.asarray(coords, dtype=np.float64)
            model.fit(x[idx], y)
            pred += np.asarray(model.predict(x), dtype=np.float64)
        return pred / len(layouts)


class RandomStrategy(Strategy):
    """Uniform random order of the free candidates."""

    name = "random"

    def _rank(self, layouts, evaluated, scores, pending, taken, n_start, n, rng, points):
        free = np.flatnonzero(~taken)
        return free[rng.permutation(free.size)]


class PaperStrategy(Strategy):
    """The paper's: the best 3-NN prediction on one layout; pending candidates only excluded."""

    name = "paper"
    n_layouts = 1
    ranks_by_surrogate = True

    def _rank(self, layouts, evaluated, scores, pending, taken, n_start, n, rng, points):
        return _order(self.predict(layouts[:1], evaluated, scores), taken, rng)


class EnsembleStrategy(Strategy):
    """Spread picks, then the best mean prediction over ``N_LAYOUTS`` layouts, each of a batch's
    picks counting as pending (scoring the mean so far) for the next."""

    name = "ensemble"
    n_layouts = N_LAYOUTS
    default_regressor = "knn-distance"

    def _rank(self, layouts, evaluated, scores, pending, taken, n_start, n, rng, points):
        layouts = layouts[:N_LAYOUTS]
        picks: list = []
        n_spread = max(0, n_start + N_SPREAD - int(taken.sum()))
        if n_spread:
            picks = spread_picks(layouts[0], np.flatnonzero(taken), min(n_spread, n), rng)
            taken = taken.copy()
            taken[picks] = True
        lie = float(scores.mean()) if scores.size else 0.0
        known = np.concatenate([evaluated, pending, np.array(picks, dtype=np.int64)])
        y = np.concatenate([scores, np.full(known.size - scores.size, lie)])
        while len(picks) < n - 1:
            model = self._model_for(int(taken.sum()), layouts, points)
            order = _order(self.predict(model, known, y), taken, rng)
            if order.size == 0:
                return np.array(picks, dtype=np.int64)
            picks.append(int(order[0]))
            taken[order[0]] = True
            known, y = np.append(known, order[0]), np.append(y, lie)
        model = self._model_for(int(taken.sum()), layouts, points)
        rest = _order(self.predict(model, known, y), taken, rng)
        return np.concatenate([np.array(picks, dtype=np.int64), rest])

    def _model_for(self, n_taken: int, layouts: np.ndarray, points: Optional[np.ndarray]):
        """What the pick after ``n_taken`` taken candidates is predicted from: the layouts."""
        return layouts


class HybridStrategy(EnsembleStrategy):
    """The ensemble taking turns with the same regressor on the output points."""

    name = "hybrid"
    needs_points = True
    default_regressor = "knn"

    def _model_for(self, n_taken: int, layouts: np.ndarray, points: Optional[np.ndarray]):
        """Every other pick from the output points (as one [1, n, P] stack)."""
        return points[None] if n_taken % 2 == 0 else layouts


class AdaptiveStrategy(Strategy):
    """Spread picks, then each pick from the k-NN model (layouts or output points) drawn by its
    leave-one-out error (``surrogate.adaptive``); pending candidates only excluded."""

    name = "adaptive"
    n_layouts = N_LAYOUTS
    needs_points = True

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._spaces_memo = None

    def _rank(self, layouts, evaluated, scores, pending, taken, n_start, n, rng, points):
        from .adaptive import adaptive_scores

        n_spread = max(0, n_start + self.adaptive.spread - int(taken.sum()))
        picks = (spread_picks(layouts[0], np.flatnonzero(taken), min(n_spread, n), rng)
                 if n_spread else [])
        if picks:
            taken = taken.copy()
            taken[picks] = True
        acquisition = adaptive_scores(self._knn_spaces(layouts, points), evaluated, scores,
                                      self.adaptive.kappa, self.adaptive.power, rng)
        return np.concatenate([np.array(picks, dtype=np.int64), _order(acquisition, taken, rng)])

    def _knn_spaces(self, layouts: np.ndarray, points: np.ndarray) -> list:
        """The two models, kept while the same arrays come back: a search ranks from the same
        candidates' layouts and points at every pick."""
        from .adaptive import KnnSpace

        memo = self._spaces_memo
        if memo is None or memo[0] is not layouts or memo[1] is not points:
            memo = (layouts, points, [KnnSpace(layouts[:N_LAYOUTS]), KnnSpace(points[None])])
            self._spaces_memo = memo
        return memo[2]


_CLASSES = {cls.name: cls for cls in (AdaptiveStrategy, EnsembleStrategy, HybridStrategy,
                                      PaperStrategy, RandomStrategy)}


def _positions(ids: np.ndarray, scores: Dict[int, float]):
    """(class id -> candidate position, evaluated positions, their scores; None as NaN)."""
    pos = {int(c): i for i, c in enumerate(np.asarray(ids).tolist())}
    done = [(pos[c], v) for c, v in scores.items() if c in pos]
    evaluated = np.array([p for p, _ in done], dtype=np.int64)
    values = np.array([np.nan if v is None else v for _, v in done], dtype=np.float64)
    return pos, evaluated, values


def predict_classes(strategy: Strategy, ids: np.ndarray, layouts: np.ndarray,
                    scores: Dict[int, float]) -> np.ndarray:
    """``Strategy.predict`` for every candidate class from the evaluated classes' ``scores``
    (failures, non-finite, left out)."""
    _, evaluated, values = _positions(ids, scores)
    ok = np.isfinite(values)
    return strategy.predict(layouts, evaluated[ok], values[ok])


def rank_classes(strategy: Strategy, ids: np.ndarray, layouts: Optional[np.ndarray],
                 scores: Dict[int, float], pending: Iterable[int], n_start: int, n: int,
                 random_state: Optional[int], points: Optional[np.ndarray] = None) -> List[int]:
    """``Strategy.rank`` over candidate classes: ``ids`` the candidates' class ids (``layouts``
    [M, len(ids), 2] and ``points`` [len(ids), P] in their order), ``scores`` the evaluated classes'
    scores, ``pending`` the claimed ones. Returns class ids. The random generator is seeded by ``random_state`` and the
    number of results and claims together, so a search is reproducible and still differs per turn."""
    pos, evaluated, values = _positions(ids, scores)
    claimed = np.array([pos[c] for c in pending if c in pos], dtype=np.int64)
    # Seeded by how many are taken, not by how many of those are still running: two workers that
    # rank at once, one seeing a training as running and the other as finished, must draw the same
    # spread picks and tie order, or the one ranked second can take what the first took.
    rng = np.random.default_rng([0 if random_state is None else int(random_state),
                                 evaluated.size + claimed.size])
    order = strategy.rank(layouts if strategy.n_layouts else None, evaluated, values, claimed,
                          n_start, n, rng, n_candidates=len(pos),
                          points=points if strategy.needs_points else None)
    return np.asarray(ids)[order].tolist()


__all__ = ["ADAPTIVE_KAPPA", "ADAPTIVE_POWER", "ADAPTIVE_SPREAD", "AdaptiveSettings",
           "AdaptiveStrategy", "DEFAULT_STRATEGY", "EnsembleStrategy", "HybridStrategy",
           "N_LAYOUTS", "N_SPREAD", "OUTPUT_STRIDE", "PaperStrategy", "RandomStrategy",
           "STRATEGY_NAMES", "Strategy", "output_points", "parse_variant", "predict_classes", "rank_classes", "spread_picks"]
