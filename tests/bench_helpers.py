"""Synthetic benchmarks in the Act-Bench layout with a known structure, and a task that trains
nothing, for the benchmark, replay and Ray tests."""
import gzip
import json

import numpy as np
import aquasurf_fast as aq

# A task that trains nothing: scores are a deterministic function of the name and the seed, so a
# build is fast and its results are known.
FAKE_TASK = '''
import torch
from torch import nn

def build(activation):
    return nn.Sequential(nn.Linear(8, 40), activation, nn.Linear(40, 10))

def fisher_batch():
    g = torch.Generator().manual_seed(0)
    return torch.randn(16, 8, generator=g), torch.randint(0, 10, (16,), generator=g)

def score(name, seed):
    return (sum(map(ord, name)) * (seed + 3) % 101) / 101

def train_eval(activation, seed=0):
    s = score(activation.name, seed)
    return {"val_acc": s, "test_acc": s / 2, "train_acc": s + 0.01, "train_loss": 1 - s,
            "val_loss": 1.5 - s, "test_loss": 2 - s, "runtime": 0.5}
'''

LAYOUT = ("Train Accuracy", "Validation Accuracy", "Test Accuracy", "Train Loss", "Validation Loss",
          "Test Loss", "Equivalent Activation Functions", "Fisher log eigenvalue CDF", "Runtime (s)")


def synthetic_rows(n=300, seed=0, target="mul(erf(x),erfc(x))", n_fisher=24):
    """``n`` real classes of the benchmark space plus the baselines, scored by closeness to a target.

    The validation accuracy falls off smoothly with the distance of a function's outputs from the
    target's, so neighbours in output space score alike: exactly the structure the surrogate
    exploits and random search cannot. The Fisher stand-in is CDF-shaped (monotone, ending at 1)
    and, like the real features, a smooth function of the activation's shape.
    """
    rng = np.random.default_rng(seed)
    names = aq.enumerate_schema(aq.BENCHMARK_SCHEMA, unary=aq.BENCHMARK_UNARY_OPS)
    classes = [c for c in aq.equivalence_classes(names)]
    feats = aq.output_features([c[0] for c in classes])
    finite = np.flatnonzero(np.isfinite(feats).all(axis=1))
    pick = rng.choice(finite, size=n, replace=False)
    classes = [sorted(classes[i]) for i in pick]
    classes += [[f"{b}(x)"] for b in ("elu", "relu", "selu", "sigmoid", "softplus", "softsign",
                                      "swish", "tanh") if f"{b}(x)" not in {c[0] for c in classes}]
    feats = aq.output_features([c[0] for c in classes]).astype(np.float64)
    goal = aq.output_features([target])[0].astype(np.float64)
    dist = np.sqrt(((np.clip(feats, -10, 10) - goal) ** 2).mean(axis=1))
    val = 0.9 - 0.8 * np.tanh(dist / np.median(dist)) + rng.normal(0, 0.002, len(classes))
    test = val + rng.normal(0, 0.01, len(classes))
    order = np.argsort(aq.probe_inputs())[np.linspace(0, 999, n_fisher).astype(int)]
    fisher = np.cumsum(np.clip(feats[:, order], -5, 5) + 5, axis=1)
    fisher /= fisher[:, -1:]
    rows = {}
    for i, members in enumerate(classes):
        rows[members[0]] = {
            "Train Accuracy": float(val[i] + 0.05), "Validation Accuracy": float(val[i]),
            "Test Accuracy": float(test[i]), "Train Loss": float(1 - val[i]),
            "Validation Loss": float(1.1 - val[i]), "Test Loss": float(1.1 - test[i]),
            "Equivalent Activation Functions": members,
            "Fisher log eigenvalue CDF": fisher[i].tolist(), "Runtime (s)": 1.0 + i % 7,
        }
    return rows


def write_rows(path, rows):
    path = str(path)
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "wt", encoding="utf-8") as f:
        json.dump(rows, f)
    return path
