"""Tune the learning rate and the activation function of the built-in MNIST-1D task with Optuna.

The activation is drawn by ``AquaSurfSampler`` (baselines first, then the AQuaSurF surrogate); the
learning rate by Optuna's TPE, the sampler's default base sampler. The Fisher features of the
search space on the task's model are computed on the first run (a few minutes for the whole
benchmark space, with a progress bar) and cached for the next ones.

    python examples/optuna_mnist1d.py --trials 30
    python examples/optuna_mnist1d.py --names 300 --trials 12        # a quick look
    # several processes or machines on one search: give each the same storage
    python examples/optuna_mnist1d.py --storage sqlite:///mnist1d-optuna.db

Needs ``pip install 'aquasurf_fast[search,optuna]'``.
"""
from __future__ import annotations

import argparse
import math

import numpy as np
import optuna

import aquasurf_fast as aq
from aquasurf_fast.optuna import AquaSurfSampler
from aquasurf_fast.tasks import mnist1d


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=30)
    parser.add_argument("--names", type=int, default=0,
                        help="search this many random names of the benchmark space (0: all)")
    parser.add_argument("--storage", default=None, help="an Optuna storage URL, to share the study")
    args = parser.parse_args(argv)

    space = aq.SchemaSpace(aq.BENCHMARK_SCHEMA, unary=aq.BENCHMARK_UNARY_OPS)
    if args.names:
        rng = np.random.default_rng(0)
        space = [str(n) for n in rng.choice(list(space), args.names, replace=False)]
    sampler = AquaSurfSampler(space, task="mnist1d")
    print(f"{len(sampler.choices)} activation functions to choose from")

    def objective(trial: optuna.Trial) -> float:
        lr = trial.suggest_float("lr", 1e-4, 3e-2, log=True)
        activation = trial.suggest_categorical("activation", sampler.choices)
        result = mnist1d.train_eval(aq.Activation(activation), lr=lr)
        trial.set_user_attr("test_acc", result["test_acc"])
        # A diverged training still has an accuracy (a poor one): it is reported as a value. Raise
        # instead (or return NaN) to have the trial counted as failed; the sampler handles both.
        if not math.isfinite(result["train_loss"]):
            trial.set_user_attr("diverged", True)
        return result["val_acc"]

    study = optuna.create_study(study_name="mnist1d-activation", storage=args.storage,
                                load_if_exists=True, direction="maximize", sampler=sampler)
    study.optimize(objective, n_trials=args.trials)

    done = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    print("\nbest trials (validation accuracy, test accuracy, learning rate, activation):")
    for t in sorted(done, key=lambda t: -t.value)[:5]:
        print(f"  {t.value:.4f}  {t.user_attrs['test_acc']:.4f}  {t.params['lr']:.2e}  "
              f"{t.params['activation']}")


if __name__ == "__main__":
    main()
