"""PNG plots of a study, drawn on matplotlib ``Figure`` objects: no display is needed, and the
caller's pyplot state and backend (a notebook's, say) are left alone."""
from __future__ import annotations

import math
import os
from typing import List

import numpy as np


def new_figure(**kwargs):
    """A matplotlib ``Figure`` outside pyplot: drawing and saving it switches no backend and
    registers nothing with pyplot, so nothing needs closing."""
    try:
        from matplotlib.figure import Figure
    except ImportError as exc:
        raise ImportError("plots need matplotlib: pip install 'aquasurf_fast[search]'") from exc
    return Figure(**kwargs)


def _color_limits(values: np.ndarray):
    """Colour range that is not crushed by a few diverged trainings (accuracy ~ chance)."""
    v = values[np.isfinite(values)]
    if v.size == 0:
        return 0.0, 1.0
    lo, hi = float(np.percentile(v, 10)), float(v.max())
    if hi - lo < 1e-9:
        lo, hi = lo - 0.5, hi + 0.5
    return lo, hi


def plot_study(study, out_dir: str, prediction_map) -> List[str]:
    """Write embedding_observed.png, embedding_predicted.png and best_so_far.png; return paths.

    ``prediction_map`` is what the study's strategy sees (``study.prediction_map()``, which computes
    and logs the embedding when the candidates changed): plotting reads the study and writes
    nothing to it.
    """
    results = [r for r in study.results(members=False) if r["status"] == "done"]
    view = _EmbeddingView(*prediction_map, results)
    evaluated = {r["class_id"] for r in study.results(members=False)}
    figures = [("embedding_observed.png", lambda: _plot_observed(view)),
               ("embedding_predicted.png", lambda: _plot_predicted(view, evaluated)),
               ("best_so_far.png", lambda: _plot_best_so_far(results))]
    paths = []
    for name, draw in figures:
        fig = draw()
        paths.append(os.path.join(out_dir, name))
        fig.savefig(paths[-1])
    return paths


class _EmbeddingView:
    """The candidates' embedding with their observed and predicted scores, on one colour scale."""

    def __init__(self, ids, emb, pred, results):
        self.ids, self.emb, self.pred = ids, emb, pred
        pos = {cid: i for i, cid in enumerate(self.ids.tolist())}
        self.scored = [(pos[r["class_id"]], r) for r in results
                       if r["class_id"] in pos and math.isfinite(r["score"])]
        self.obs_idx = np.array([i for i, _ in self.scored], dtype=int)
        self.obs = np.array([r["score"] for _, r in self.scored], dtype=float)
        self.lo, self.hi = _color_limits(np.concatenate([self.obs, self.pred[np.isfinite(self.pred)]]))
        self.best = max(self.scored, key=lambda t: t[1]["score"]) if self.scored else None

    def annotate(self, ax) -> None:
        """Baselines named, the best result starred, axes unlabelled but for their names."""
        for i, r in self.scored:
            if r["baseline"]:
                ax.annotate(r["name"], self.emb[i], fontsize=7, xytext=(3, 3),
                            textcoords="offset points", color="0.2")
        if self.best is not None:
            i, r = self.best
            ax.scatter(*self.emb[i], marker="*", s=260, facecolor="none", edgecolor="red", lw=1.5,
                       zorder=5, label=f"best: {r['name']} ({r['score']:.3f})")
        if ax.get_legend_handles_labels()[0]:
            ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.06), fontsize=8, ncol=2,
                      frameon=False)
        ax.set_xlabel("UMAP 1")
        ax.set_ylabel("UMAP 2")
        ax.set_xticks([])
        ax.set_yticks([])


def _plot_observed(view: _EmbeddingView):
    """Every candidate as a faint dot for context, the evaluated ones coloured by their score."""
    emb = view.emb
    fig = new_figure(figsize=(7.5, 6), dpi=120)
    ax = fig.subplots()
    ax.scatter(emb[:, 0], emb[:, 1], s=4, c="0.82", lw=0, label=None)
    if view.scored:
        sc = ax.scatter(emb[view.obs_idx, 0], emb[view.obs_idx, 1], c=view.obs, cmap="viridis",
                        vmin=view.lo, vmax=view.hi, s=36, edgecolor="k", lw=0.4, zorder=3)
        fig.colorbar(sc, ax=ax, label="observed validation accuracy", extend="min")
    view.annotate(ax)
    ax.set_title(f"Observed scores: {len(view.scored)} evaluated of {len(view.ids)} candidates")
    fig.tight_layout()
    return fig


def _plot_predicted(view: _EmbeddingView, evaluated):
    """The surrogate's view of the whole space, on the observed scores' colour scale, with the
    best predicted of the classes not in ``evaluated`` marked."""
    emb, pred, ids = view.emb, view.pred, view.ids
    fig = new_figure(figsize=(7.5, 6), dpi=120)
    ax = fig.subplots()
    size = float(np.clip(4000.0 / max(len(ids), 1), 6, 30))
    if np.isfinite(pred).any():
        order = np.argsort(pred)  # the most promising drawn last, on top
        sc = ax.scatter(emb[order, 0], emb[order, 1], c=pred[order], cmap="viridis", vmin=view.lo,
                        vmax=view.hi, s=size, lw=0)
        fig.colorbar(sc, ax=ax, label="predicted validation accuracy", extend="min")
        nxt = [i for i in np.argsort(-pred, kind="stable") if ids[i] not in evaluated][:5]
        if nxt:
            ax.scatter(emb[nxt, 0], emb[nxt, 1], marker="x", s=50, c="red", lw=1.5, zorder=4,
                       label="highest predicted, not evaluated")
    else:
        ax.scatter(emb[:, 0], emb[:, 1], s=6, c="0.6", lw=0)
    if view.scored:
        ax.scatter(emb[view.obs_idx, 0], emb[view.obs_idx, 1], s=30, facecolor="none",
                   edgecolor="k", lw=0.6, zorder=3)
    view.annotate(ax)
    ax.set_title("Surrogate predictions (circles: evaluated)")
    fig.tight_layout()
    return fig


def _plot_best_so_far(results):
    """The best score so far against the number of evaluations, with relu's as a reference."""
    fig = new_figure(figsize=(8.5, 4.5), dpi=120)
    ax = fig.subplots()
    seq = sorted((r for r in results if r["eval_index"] is not None), key=lambda r: r["eval_index"])
    if seq:
        x = np.arange(1, len(seq) + 1)
        y = np.array([r["score"] if math.isfinite(r["score"]) else np.nan for r in seq])
        base = np.array([r["baseline"] for r in seq])
        ax.scatter(x[base], y[base], s=18, c="tab:gray", label="baseline", zorder=3)
        ax.scatter(x[~base], y[~base], s=18, c="tab:blue", label="suggested", zorder=3)
        ax.step(x, np.fmax.accumulate(np.nan_to_num(y, nan=-np.inf)), where="post", c="tab:red",
                label="best so far")
        relu = next((r for r in seq if "relu" in r["members"] or "relu(x)" in r["members"]), None)
        if relu is not None and math.isfinite(relu["score"]):
            ax.axhline(relu["score"], ls="--", c="0.4", lw=1, label=f"relu ({relu['score']:.3f})")
        finite = y[np.isfinite(y)]
        if finite.size:
            span = max(float(finite.max() - finite.min()), 0.01)
            ax.set_ylim(float(finite.min()) - 0.05 * span, float(finite.max()) + 0.05 * span)
        # Outside the axes: inside, it hides the points it explains.
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, borderaxespad=0)
    ax.set_xlabel("evaluations")
    ax.set_ylabel("validation accuracy")
    ax.set_title("Search progress")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig
