"""AquaSurfSampler: the AQuaSurF search as an Optuna sampler (aquasurf_fast.optuna)."""
import math
import os
import pickle
import shutil
import subprocess
import sys
import time

import numpy as np
import pytest

optuna = pytest.importorskip("optuna")
torch = pytest.importorskip("torch")
pytest.importorskip("umap")

import aquasurf_fast as aq  # noqa: E402
from aquasurf_fast.fisher import candidates as fisher_candidates  # noqa: E402
from aquasurf_fast.optuna import AquaSurfSampler  # noqa: E402
from aquasurf_fast.integrations.optuna.sampler_cache import model_key  # noqa: E402
from aquasurf_fast.integrations.optuna.space import ActivationSpace  # noqa: E402
from search_helpers import BASELINES, fake_score  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
PACKAGE_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(aq.__file__)))
N_STEPS = 16  # the 8 baselines, then 8 surrogate suggestions

optuna.logging.set_verbosity(optuna.logging.ERROR)


def build(activation):
    return torch.nn.Sequential(torch.nn.Linear(8, 40), activation, torch.nn.Linear(40, 10))


def fisher_batch():
    g = torch.Generator().manual_seed(0)
    return torch.randn(16, 8, generator=g), torch.randint(0, 10, (16,), generator=g)


@pytest.fixture(scope="module", autouse=True)
def cache_dir(tmp_path_factory):
    with pytest.MonkeyPatch.context() as mp:
        path = str(tmp_path_factory.mktemp("aqcache"))
        mp.setenv("AQUASURF_CACHE", path)
        yield path


@pytest.fixture(scope="module")
def names():
    space = aq.enumerate_schema(aq.BENCHMARK_SCHEMA, unary=aq.BENCHMARK_UNARY_OPS)
    return [str(n) for n in np.random.default_rng(0).choice(space, 40, replace=False)]


@pytest.fixture(scope="module")
def study_file(tmp_path_factory, names):
    """A featurized study (embedding stored) of the names; tests run copies of it."""
    path = str(tmp_path_factory.mktemp("study") / "study.db")
    inputs, targets = fisher_batch()
    with aq.Study(path) as study:
        study.add_functions(names)
        study.featurize(build=build, inputs=inputs, targets=targets, progress=False)
    return path


@pytest.fixture(scope="module")
def sampler(study_file):
    return AquaSurfSampler(study_file, progress=False)


def study_suggestions(study_file, tmp_path, n, outcome=None, **settings):
    """What ``aq.Study`` suggests, one at a time; ``outcome(i, name)`` returns a score, or None for
    a failed evaluation (default: fake_score)."""
    path = str(tmp_path / "copy.db")
    shutil.copy(study_file, path)
    drawn = []
    with aq.Study(path) as study:
        study.update_settings(**settings)
        for i in range(n):
            (claim,) = study.suggest(1)
            drawn.append(str(claim))
            score = fake_score(str(claim)) if outcome is None else outcome(i, str(claim))
            if score is None:
                study.fail(claim, "diverged")
            else:
                study.tell(claim, score)
    return drawn


def sampler_draws(sampler, n, objective=None, direction="maximize", **optimize):
    study = optuna.create_study(direction=direction, sampler=sampler)

    def default(trial):
        return fake_score(trial.suggest_categorical("activation", sampler.choices))

    study.optimize(objective or default, n_trials=n, **optimize)
    return [t.params["activation"] for t in study.trials]


def worker_env():
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([HERE, PACKAGE_ROOT, env.get("PYTHONPATH", "")])
    return env


# A process of its own: a fresh sampler on the shared study file and Optuna storage.
WORKER = """
import os, sys, time
import optuna
from aquasurf_fast.optuna import AquaSurfSampler
from search_helpers import fake_score

study_file, db, n_trials, constant = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4] == "1"
optuna.logging.set_verbosity(optuna.logging.ERROR)
sampler = AquaSurfSampler(study_file, progress=False)
storage = optuna.storages.RDBStorage(f"sqlite:///{db}",
                                     engine_kwargs={"connect_args": {"timeout": 60}})
study = optuna.load_study(study_name="shared", storage=storage, sampler=sampler)
if constant:
    # Start together, so that each process draws while the other's trials run.
    open(f"{db}.ready-{os.getpid()}", "w").close()
    while len([f for f in os.listdir(os.path.dirname(db)) if ".ready-" in f]) < 2:
        time.sleep(0.01)

def objective(trial):
    name = trial.suggest_categorical("activation", sampler.choices)
    if constant:
        time.sleep(0.1)
        return 0.5
    return fake_score(name)

study.optimize(objective, n_trials=n_trials)
"""


def start_worker(study_file, db, n_trials, constant=False):
    return subprocess.Popen(
        [sys.executable, "-c", WORKER, study_file, db, str(n_trials), str(int(constant))],
        cwd=HERE, env=worker_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def finish(proc):
    out, _ = proc.communicate(timeout=300)
    assert proc.returncode == 0, out


def shared_storage(tmp_path):
    """(database path, storage URL) of a new shared study."""
    db = str(tmp_path / "optuna.db")
    optuna.create_study(study_name="shared", storage=f"sqlite:///{db}", direction="maximize")
    return db, f"sqlite:///{db}"


# -- the AQuaSurF suggestions ----------------------------------------------------------------------

def test_reproduces_study_suggestions_from_its_file(sampler, study_file, tmp_path):
    expected = study_suggestions(study_file, tmp_path, N_STEPS)
    assert expected[:8] == [f"{b}(x)" for b in BASELINES]
    assert sampler_draws(sampler, N_STEPS) == expected


def test_names_with_a_model_reproduce_a_study_of_the_same_names(names, study_file, tmp_path):
    inputs, targets = fisher_batch()
    fresh = AquaSurfSampler(names, build=build, inputs=inputs, targets=targets, progress=False)
    assert sampler_draws(fresh, N_STEPS) == study_suggestions(study_file, tmp_path, N_STEPS)


def test_minimize_reads_values_in_the_study_direction(sampler, study_file, tmp_path):
    def objective(trial):
        return -fake_score(trial.suggest_categorical("activation", sampler.choices))

    drawn = sampler_draws(sampler, N_STEPS, objective, direction="minimize")
    assert drawn == study_suggestions(study_file, tmp_path, N_STEPS)


def test_failed_pruned_and_nan_trials_give_no_score(sampler, study_file, tmp_path):
    broken = {1: "raise", 9: "prune", 11: "nan"}

    def objective(trial):
        name = trial.suggest_categorical("activation", sampler.choices)
        what = broken.get(trial.number)
        if what == "raise":
            raise FloatingPointError("training diverged")
        if what == "prune":
            raise optuna.TrialPruned()
        return math.nan if what == "nan" else fake_score(name)

    study = optuna.create_study(direction="maximize", sampler=sampler)
    study.optimize(objective, n_trials=N_STEPS, catch=(FloatingPointError,))
    states = [t.state for t in study.trials]
    assert states.count(optuna.trial.TrialState.FAIL) == 2
    assert states.count(optuna.trial.TrialState.PRUNED) == 1
    # A study that never retries a failure and records no score for it draws the same.
    expected = study_suggestions(
        study_file, tmp_path, N_STEPS, max_retries=0,
        outcome=lambda i, name: None if i in broken else fake_score(name))
    assert [t.params["activation"] for t in study.trials] == expected


class Recording(optuna.samplers.BaseSampler):
    """A base sampler that remembers which parameters it was asked for."""

    def __init__(self, inner):
        self.inner, self.asked = inner, set()

    def infer_relative_search_space(self, study, trial):
        return self.inner.infer_relative_search_space(study, trial)

    def sample_relative(self, study, trial, search_space):
        self.asked.update(search_space)
        return self.inner.sample_relative(study, trial, search_space)

    def sample_independent(self, study, trial, name, distribution):
        self.asked.add(name)
        return self.inner.sample_independent(study, trial, name, distribution)


@pytest.mark.parametrize("inner", [optuna.samplers.RandomSampler(seed=0),
                                   optuna.samplers.TPESampler(multivariate=True, n_startup_trials=4,
                                                              seed=0)],
                         ids=["random", "multivariate-tpe"])
def test_mixed_space_delegates_other_parameters(study_file, tmp_path, inner):
    base = Recording(inner)
    mixed = AquaSurfSampler(study_file, base_sampler=base, progress=False)

    def objective(trial):
        lr = trial.suggest_float("lr", 1e-4, 1e-1, log=True)
        width = trial.suggest_categorical("width", [16, 32, 64])
        assert 1e-4 <= lr <= 1e-1 and width in (16, 32, 64)
        return fake_score(trial.suggest_categorical("activation", mixed.choices))

    assert sampler_draws(mixed, N_STEPS, objective) == study_suggestions(study_file, tmp_path,
                                                                         N_STEPS)
    assert base.asked == {"lr", "width"}


def test_exhausted_choices_draw_the_best_again():
    small = AquaSurfSampler(["relu(x)", "tanh(x)", "erf(x)"], baselines=(), progress=False)
    drawn = sampler_draws(small, 5)
    best = max(small.choices, key=fake_score)
    assert sorted(drawn[:3]) == sorted(small.choices)
    assert drawn[3:] == [best, best]


def test_enqueued_trials_are_drawn_as_given_and_not_again(sampler):
    study = optuna.create_study(direction="maximize", sampler=sampler)
    study.enqueue_trial({"activation": "tanh(x)"})
    study.enqueue_trial({"activation": "relu(x)"})
    study.optimize(lambda t: fake_score(t.suggest_categorical("activation", sampler.choices)),
                   n_trials=4)
    assert [t.params["activation"] for t in study.trials] == ["tanh(x)", "relu(x)", "elu(x)",
                                                              "selu(x)"]


def test_choices_equivalent_to_a_class_draw_that_class(sampler):
    # mul(one(x),relu(x)) is listed nowhere, but its outputs are relu's: it names relu's class.
    choices = [c if c != "relu(x)" else "mul(one(x),relu(x))" for c in sampler.choices]
    study = optuna.create_study(direction="maximize", sampler=sampler)
    study.optimize(lambda t: fake_score(t.suggest_categorical("activation", choices)), n_trials=3)
    assert [t.params["activation"] for t in study.trials] == ["elu(x)", "mul(one(x),relu(x))",
                                                              "selu(x)"]


# -- state from the trials: processes, threads, pickling -------------------------------------------

def test_a_second_process_continues_the_search_of_the_first(study_file, tmp_path):
    db, url = shared_storage(tmp_path)
    finish(start_worker(study_file, db, 6))
    finish(start_worker(study_file, db, N_STEPS - 6))
    trials = optuna.load_study(study_name="shared", storage=url).trials
    assert ([t.params["activation"] for t in trials]
            == study_suggestions(study_file, tmp_path, N_STEPS))


def test_two_processes_at_once_draw_distinct_classes(study_file, tmp_path):
    db, url = shared_storage(tmp_path)
    procs = [start_worker(study_file, db, 8, constant=True) for _ in range(2)]
    for proc in procs:
        finish(proc)
    trials = optuna.load_study(study_name="shared", storage=url).trials
    assert all(t.state == optuna.trial.TrialState.COMPLETE for t in trials)
    drawn = [t.params["activation"] for t in trials]
    assert len(drawn) == 16 and len(set(drawn)) == 16


def test_n_jobs_threads_draw_distinct_classes(sampler):
    def objective(trial):
        trial.suggest_categorical("activation", sampler.choices)
        time.sleep(0.02)
        return 0.5

    drawn = sampler_draws(sampler, 12, objective, n_jobs=3)
    assert len(set(drawn)) == 12
    assert set(drawn[:8]) == {f"{b}(x)" for b in BASELINES}


def test_a_pickled_sampler_continues_the_same_study(sampler, study_file, tmp_path):
    study = optuna.create_study(direction="maximize", sampler=sampler)

    def objective(trial):
        return fake_score(trial.suggest_categorical("activation", sampler.choices))

    study.optimize(objective, n_trials=10)
    study.sampler = pickle.loads(pickle.dumps(sampler))
    study.optimize(objective, n_trials=N_STEPS - 10)
    assert ([t.params["activation"] for t in study.trials]
            == study_suggestions(study_file, tmp_path, N_STEPS))


# -- spaces and caches -----------------------------------------------------------------------------

def test_a_schema_space_has_the_classes_of_its_names():
    space = aq.SchemaSpace("binary(unary(x),unary(x))", unary=("relu", "tanh", "erf", "abs", "one"),
                           binary=("add", "max", "mul"))
    from_schema = ActivationSpace.from_schema(space)
    from_names = ActivationSpace.from_names(list(space))
    assert from_schema.names == from_names.names
    np.testing.assert_array_equal(from_schema.out_feats, from_names.out_feats)
    # Every name of the schema belongs to the class it was grouped into, listed or not.
    rows = from_schema.classes_of(list(space))
    assert (rows >= 0).all()
    assert all(list(space)[i] in from_names.classes[rows[i]] for i in range(len(space)))


def test_fisher_features_are_computed_once_per_model(names, monkeypatch):
    inputs, targets = fisher_batch()
    AquaSurfSampler(names[:10], build=build, inputs=inputs, targets=targets, progress=False)

    def must_not_run(*args, **kwargs):
        raise AssertionError("Fisher features recomputed despite the cache")

    monkeypatch.setattr(fisher_candidates, "fisher_features_for", must_not_run)
    again = AquaSurfSampler(names[:10], build=build, inputs=inputs, targets=targets,
                            progress=False)
    assert again.space.fisher_ok[again.space.candidates].all()

    def wider(activation):
        return torch.nn.Sequential(torch.nn.Linear(8, 50), activation, torch.nn.Linear(50, 10))

    assert model_key(wider, inputs, targets) != model_key(build, inputs, targets)
    assert model_key(build, inputs, targets + 1) != model_key(build, inputs, targets)


# -- bad inputs ------------------------------------------------------------------------------------

def test_a_space_name_that_is_not_an_expression_is_refused():
    with pytest.raises(ValueError, match=r"unknown operator 'relu2' at position 0"):
        AquaSurfSampler(["relu(x)", "relu2(x)"], progress=False)


def test_a_missing_study_file_is_refused(tmp_path):
    with pytest.raises(ValueError, match="no such study file"):
        AquaSurfSampler(str(tmp_path / "absent.db"), progress=False)


@pytest.mark.parametrize("choices, message", [
    (["relu(x)", "max(relu(x)"], r"parameter 'activation': choice 'max\(relu\(x\)' is not an "
                                  r"activation-function expression: .*position 11"),
    (["relu(x)", "cosh(cosh(x))"], r"1 of its choices are in no class of the sampler's space "
                                    r"\('cosh\(cosh\(x\)\)'\)"),
], ids=["not-an-expression", "not-in-the-space"])
def test_bad_choices_get_one_clear_error(sampler, choices, message):
    study = optuna.create_study(sampler=sampler)
    with pytest.raises(ValueError, match=message):
        study.optimize(lambda t: fake_score(t.suggest_categorical("activation", choices)),
                       n_trials=1)


def test_a_non_categorical_parameter_of_that_name_is_refused(sampler):
    study = optuna.create_study(sampler=sampler)
    with pytest.raises(ValueError, match=r"'activation' is drawn by AquaSurfSampler, so it must "
                                         r"be categorical .* not a FloatDistribution"):
        study.optimize(lambda t: t.suggest_float("activation", 0.0, 1.0), n_trials=1)


# -- Ray Tune --------------------------------------------------------------------------------------

def test_ray_tune_optuna_search_uses_the_sampler(sampler, study_file, tmp_path):
    try:
        import ray
        from ray import tune
        from ray.tune.search.optuna import OptunaSearch
    except ImportError as exc:
        pytest.skip(f"Ray Tune is not importable: {exc}")

    def trainable(config):
        tune.report({"score": fake_score(config["activation"])})

    search = OptunaSearch(
        space={"activation": optuna.distributions.CategoricalDistribution(sampler.choices)},
        sampler=sampler, metric="score", mode="max")
    ray.init(num_cpus=1, include_dashboard=False, log_to_driver=False,
             runtime_env={"env_vars": {"PYTHONPATH": worker_env()["PYTHONPATH"]}})
    try:
        results = tune.Tuner(
            trainable,
            tune_config=tune.TuneConfig(search_alg=search, num_samples=10, max_concurrent_trials=1),
            run_config=tune.RunConfig(storage_path=str(tmp_path / "ray"), verbose=0),
        ).fit()
    finally:
        ray.shutdown()
    drawn = {r.config["activation"] for r in results}
    assert drawn == set(study_suggestions(study_file, tmp_path, 10))
