"""Optuna samplers on the MNIST-1D Act-Bench benchmark: evaluations until a top-1% class.

One categorical parameter, the activation, whose choices are the benchmark's candidates (trained
classes with Fisher features, one name each), is tuned by ``AquaSurfSampler`` and by Optuna's own
``TPESampler`` and ``RandomSampler``. A trial's value is the class's looked-up validation accuracy;
nothing is trained. Each sampler runs ``--trials`` searches (seeds 0, 1, ...), each stopped as soon
as it draws a class among the top 1% by validation accuracy, or after ``--budget`` trials. TPE and
random search may draw a class again; such a trial counts, as it would cost a training.

Order: check that the sampler draws the baselines first, then the best k-NN prediction on the UMAP
union embedding (computed here independently), then run the searches and print the table.

    python benchmarks/bench_optuna.py                 # 3.5 min on 2 cores at first, then 34 s
    python benchmarks/bench_optuna.py --trials 5      # quicker

The sampler's UMAP embedding (one per seed) is cached in $AQUASURF_CACHE, so later runs are faster.
"""
from __future__ import annotations

import argparse
import math
import os
import statistics
import sys
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

import optuna  # noqa: E402

import aquasurf_fast as aq  # noqa: E402
from aquasurf_fast.optuna import ActivationSpace, AquaSurfSampler  # noqa: E402
from aquasurf_fast.bench.replay import make_pool  # noqa: E402
from aquasurf_fast.surrogate import compute_embedding, make_regressor  # noqa: E402
from _timing import print_table  # noqa: E402

DEFAULT_BENCHMARK = os.path.join(os.path.dirname(__file__), "data", "act-bench-mnist1d.json.gz")
SAMPLERS = {
    "AquaSurfSampler": lambda space, seed: AquaSurfSampler(space, seed=seed, progress=False),
    "AquaSurfSampler, paper": lambda space, seed: AquaSurfSampler(space, seed=seed, progress=False,
                                                                  strategy="paper"),
    "TPESampler": lambda space, seed: optuna.samplers.TPESampler(seed=seed),
    "RandomSampler": lambda space, seed: optuna.samplers.RandomSampler(seed=seed),
}


def candidate_space(bench, pool) -> ActivationSpace:
    """The pool's classes with their members (so the baselines are found by any member's name)."""
    classes = [[name] + [m for m in bench.members[row] if m != name]
               for name, row in zip(pool.names, pool.rows)]
    return ActivationSpace(classes, pool.out_feats, pool.fisher)


def search(sampler, choices, val, threshold, budget):
    """(names drawn, whether a top-1% class was drawn, seconds) of one search."""
    index = {name: i for i, name in enumerate(choices)}
    study = optuna.create_study(direction="maximize", sampler=sampler)

    def objective(trial):
        return val[index[trial.suggest_categorical("activation", choices)]]

    def stop_at_top(study, trial):
        if trial.value >= threshold:
            study.stop()

    start = time.perf_counter()
    study.optimize(objective, n_trials=budget, callbacks=[stop_at_top])
    seconds = time.perf_counter() - start
    drawn = [t.params["activation"] for t in study.trials]
    return drawn, study.trials[-1].value >= threshold, seconds


def check(space, pool, choices, threshold):
    """With the paper's strategy the sampler draws the pool's baselines in order, then the best
    k-NN prediction on an embedding computed here (the default strategy ranks through the same
    code as a study, which the tests compare)."""
    sampler = AquaSurfSampler(space, seed=0, progress=False, strategy="paper")
    assert list(sampler.choices) == choices, "the sampler's choices are not the pool's candidates"
    drawn, _, _ = search(sampler, choices, pool.val, math.inf, len(pool.baselines) + 1)
    baselines = [pool.names[i] for i in pool.baselines]
    assert drawn[:-1] == baselines, f"first draws {drawn[:-1]} are not the baselines {baselines}"
    emb = compute_embedding(pool.out_feats, pool.fisher, 0).astype(np.float64)
    knn = make_regressor("knn", 0, len(baselines))
    knn.fit(emb[pool.baselines], pool.val[pool.baselines])
    pred = knn.predict(emb)
    pred[pool.baselines] = -np.inf
    assert pred[choices.index(drawn[-1])] == pred.max(), "the ninth draw is not the best predicted"
    print(f"check: baselines first ({', '.join(baselines)}), then the best k-NN prediction "
          f"({drawn[-1]}); top-1% threshold {threshold:.4f}")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--benchmark", default=DEFAULT_BENCHMARK)
    parser.add_argument("--trials", type=int, default=20, help="searches per sampler")
    parser.add_argument("--budget", type=int, default=200, help="most trials of one search")
    args = parser.parse_args(argv)
    optuna.logging.set_verbosity(optuna.logging.ERROR)

    bench = aq.load_benchmark(args.benchmark)
    pool = make_pool(bench)
    space = candidate_space(bench, pool)
    choices = list(pool.names)
    threshold = pool.top_threshold("top-1%")
    n_top = pool.n_top("top-1%")
    print(f"{bench}\n{len(pool)} candidates, {n_top} in the top 1% by validation accuracy")
    check(space, pool, choices, threshold)

    rows, medians = [], {}
    for name, make in SAMPLERS.items():
        evals, reached, seconds = [], 0, 0.0
        for seed in range(args.trials):
            sampler = make(space, seed)  # built outside the timed search: its embedding is cached
            drawn, hit, s = search(sampler, choices, pool.val, threshold, args.budget)
            evals.append(len(drawn) if hit else math.inf)
            reached += hit
            seconds += s
            print(f"  {name} seed {seed}: {len(drawn) if hit else f'>{args.budget}'}", flush=True)
        medians[name] = statistics.median(evals)
        ms_per_trial = 1000 * seconds / sum(min(e, args.budget) for e in evals)
        rows.append([name, medians[name], f"{reached / args.trials:.0%}", f"{ms_per_trial:.1f}"])
    for row in rows:
        median = row[1]
        row[1] = f">{args.budget}" if not math.isfinite(median) else f"{median:g}"
        base = medians["RandomSampler"]
        row.append(f"{base / median:.2f}" if math.isfinite(base) and math.isfinite(median) else "-")
    print_table(f"Evaluations to a top-1% class ({n_top} of {len(pool)}), median of {args.trials} "
                f"searches of at most {args.budget}",
                ["sampler", "evals to top-1%", "reached", "ms per trial", "random / it"], rows)


if __name__ == "__main__":
    main()
