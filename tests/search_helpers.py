"""Synthetic search spaces and fake evaluations shared by the search tests (no engine needed)."""
import os

import numpy as np
import aquasurf_fast as aq

BASELINES = ["elu", "relu", "selu", "sigmoid", "softplus", "softsign", "swish", "tanh"]


def synthetic_space(n_extra=24, n_fisher=40, seed=0, duplicates=0):
    """Classes (baselines + f0..), output features and Fisher CDF-like features, all finite."""
    rng = np.random.default_rng(seed)
    names = BASELINES + [f"f{i}" for i in range(n_extra)]
    classes = [[n] for n in names]
    for i in range(duplicates):
        classes[len(BASELINES) + i].append(f"g{i}")
    out = rng.normal(size=(len(classes), 1000)).astype(np.float32)
    fisher = np.sort(rng.random((len(classes), n_fisher)), axis=1).astype(np.float32)
    return classes, out, fisher


def make_study(path, n_extra=24, seed=0, **kwargs):
    classes, out, fisher = synthetic_space(n_extra, seed=seed)
    study = aq.Study(str(path), **kwargs)
    study.add_classes(classes, out)
    study.set_fisher_features([c[0] for c in classes], fisher)
    return study


def fake_score(name: str) -> float:
    """A deterministic score in [0, 1) from the name (stable across processes, unlike hash())."""
    return (sum(ord(ch) * (i + 1) for i, ch in enumerate(name)) % 997) / 997.0


def fake_evaluate(name: str) -> float:
    return fake_score(name)


def suggest_and_tell_worker(path, n_evals, out_queue):
    """Suggest and tell until the pool is empty, as a separate process would; puts what it told."""
    study = aq.Study(path, owner=f"worker-{os.getpid()}")
    told = []
    while len(told) < n_evals:
        claims = study.suggest(1)
        if not claims:
            break
        for claim in claims:
            assert study.tell(claim, fake_score(claim), loss=1.0)
            told.append(str(claim))
    out_queue.put(told)


def told_by_workers(path, n_evals, n_workers=4, timeout=300):
    """Names told by ``n_workers`` spawned processes that suggest and tell on one study file."""
    import multiprocessing as mp

    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    procs = [ctx.Process(target=suggest_and_tell_worker, args=(path, n_evals, queue))
             for _ in range(n_workers)]
    for p in procs:
        p.start()
    told = [name for _ in procs for name in queue.get(timeout=timeout)]
    for p in procs:
        p.join(30)
        assert p.exitcode == 0
    return told
