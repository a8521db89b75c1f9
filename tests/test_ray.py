"""The Ray executor against a real local Ray instance with 2 CPUs."""
import os
import sys

import numpy as np
import pytest

import aquasurf_fast as aq
from aquasurf_fast.execution.executors import make_executor

from search_helpers import fake_evaluate, fake_score, make_study
from bench_helpers import FAKE_TASK
from sql_helpers import sql

ray = pytest.importorskip("ray", reason="the Ray executor tests need ray (aquasurf_fast[ray])")
from aquasurf_fast.execution.ray_executor import RayExecutor  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
PACKAGE_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(aq.__file__)))


@pytest.fixture(scope="module", autouse=True)
def ray_cluster():
    # Workers import the test helpers (and the package, when it is run from a source tree).
    path = os.pathsep.join([HERE, PACKAGE_ROOT, os.environ.get("PYTHONPATH", "")])
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False,
             runtime_env={"env_vars": {"PYTHONPATH": path}})
    yield
    ray.shutdown()


def check_consistent(study, budget):
    """Every result recorded once, with the score evaluate gave; nothing claimed or lost."""
    counts = study.counts()
    assert counts["done"] == budget and counts["running"] == 0 and counts["failed"] == 0
    done = [r for r in study.results() if r["status"] == "done"]
    assert all(r["score"] == fake_score(r["name"]) for r in done)
    results = sql(study, "SELECT class_id FROM events WHERE kind = 'result'")
    assert len(results) == len({r[0] for r in results}) == budget
    assert not sql(study, "SELECT 1 FROM events WHERE kind = 'duplicate_result'")


def test_search_on_ray(tmp_path):
    study = make_study(tmp_path / "s.db", n_extra=16)
    stats = study.run(fake_evaluate, budget=14, executor=RayExecutor(), progress=False)
    assert stats["evaluated"] == 14
    check_consistent(study, 14)


def test_a_killed_worker_is_retried_and_nothing_is_lost(tmp_path):
    from ray_helpers import DieOnce

    markers = tmp_path / "markers"
    markers.mkdir()
    study = make_study(tmp_path / "s.db", n_extra=8)
    stats = study.run(DieOnce(str(markers)), budget=10, executor=RayExecutor(max_retries=2),
                      progress=False)
    # Every evaluation's first worker died (one marker each); Ray ran it again elsewhere.
    assert len(os.listdir(markers)) == 10
    assert stats["evaluated"] == 10 and stats["failed_attempts"] == 0
    check_consistent(study, 10)
    assert all(r["attempts"] == 0 for r in study.results())  # no failure reached the study


def test_worker_deaths_beyond_ray_retries_reach_the_study_as_failures(tmp_path):
    from ray_helpers import DieOnce

    markers = tmp_path / "markers"
    markers.mkdir()
    study = make_study(tmp_path / "s.db", n_extra=4, max_retries=1)
    stats = study.run(DieOnce(str(markers)), budget=3, executor=RayExecutor(max_retries=0),
                      progress=False, max_consecutive_failures=100)
    # Ray does not retry here: each lost worker is a failed attempt with Ray's reason, and the
    # study's own retry evaluates the class again.
    failures = sql(study, "SELECT detail FROM events WHERE kind = 'failure'")
    assert len(failures) == stats["failed_attempts"] >= 3
    assert all("Ray task" in detail for (detail,) in failures)
    check_consistent(study, 3)


def test_a_task_that_fails_in_its_worker_reports_its_own_exception(tmp_path):
    from ray_helpers import LoadsInDriverOnly

    study = make_study(tmp_path / "s.db", n_extra=2, max_retries=0)
    with pytest.raises(aq.StudyError) as info:
        study.run(LoadsInDriverOnly(os.getpid()), budget=2, executor=RayExecutor(max_retries=3),
                  progress=False, max_consecutive_failures=1)
    message = str(info.value)
    # The exception the task raised, by its type and words: not a lost worker, and no retries
    # (Ray re-runs only tasks whose worker died).
    assert "raised ImportError: No module named 'my_lab_models'" in message
    assert "retries" not in message and "lost" not in message
    assert study.counts()["running"] == 0


def test_timeout_cancels_the_task(tmp_path):
    from ray_helpers import Sleepy

    study = make_study(tmp_path / "s.db", n_extra=2, max_retries=0)
    with pytest.raises(aq.StudyError, match="timed out"):
        study.run(Sleepy(), budget=2, executor=RayExecutor(timeout=2.0, max_concurrent=2),
                  progress=False, max_consecutive_failures=2)
    assert study.counts()["running"] == 0


def test_featurize_on_ray_matches_in_process(tmp_path):
    task = tmp_path / "task.py"
    task.write_text(FAKE_TASK)
    names = ["tanh(x)", "max(relu(x),tanh(x))", "mul(x,sigmoid(x))", "add(elu(x),softsign(x))",
             "min(x,abs(x))", "div(x,zero(x))"]
    here = aq.Study(str(tmp_path / "here.db"), task=str(task))
    there = aq.Study(str(tmp_path / "there.db"), task=str(task))
    for s in (here, there):
        s.add_functions(names)
    here.featurize(chunk=3, progress=False, embed=False)
    there.featurize(chunk=3, progress=False, embed=False, executor=RayExecutor())
    q = "SELECT canonical, fisher_ok, fisher_feat, fisher_reason FROM classes ORDER BY canonical"
    assert sql(here, q) == sql(there, q)
    assert sql(there, "SELECT count(*) FROM classes WHERE fisher_ok = 1")[0][0] >= 10


def test_a_schema_study_featurizes_its_pool_and_grows_on_ray(tmp_path):
    task = tmp_path / "task.py"
    task.write_text(FAKE_TASK)
    unary = ("zero", "one", "identity", "negative", "abs", "square", "exp", "tanh", "sigmoid", "relu",
             "elu", "softplus")
    here = aq.Study(str(tmp_path / "here.db"), task=str(task))
    there = aq.Study(str(tmp_path / "there.db"), task=str(task))
    for s in (here, there):
        s.add_schema("binary(unary(x),unary(x))", unary=unary)
    here.featurize(pool=40, chunk=8, progress=False, embed=False)
    there.featurize(pool=40, chunk=8, progress=False, embed=False, executor=RayExecutor())
    q = ("SELECT canonical, pool, fisher_ok, fisher_feat FROM classes WHERE pool IS NOT NULL "
         "ORDER BY canonical")
    assert sql(here, q) == sql(there, q)
    pool = there.counts()["pool"]
    stats = there.run(budget=16, executor=RayExecutor(), progress=False, grow=6, grow_every=5)
    assert stats["done"] == 16 and stats["grown"] >= 6
    assert there.counts()["pool"] == pool + stats["grown"]
    counts = there.counts()
    assert counts["running"] == 0 and counts["failed"] == 0
    results = sql(there, "SELECT class_id FROM events WHERE kind = 'result'")
    assert len(results) == len({r[0] for r in results}) == 16


def test_gpu_requests_are_checked_against_the_cluster(tmp_path):
    from ray_helpers import NeedsGPUs

    study = make_study(tmp_path / "s.db", n_extra=2)
    with pytest.raises(ValueError, match="GPU"):
        study.run(NeedsGPUs(), budget=1, executor=RayExecutor(), progress=False)
    with pytest.raises(ValueError, match="GPU"):
        study.run(fake_evaluate, budget=1, executor=RayExecutor(num_gpus=1), progress=False)
    # A task asks through its RESOURCES, for trainings and for featurization chunks alike.
    task = tmp_path / "gpu_task.py"
    task.write_text(FAKE_TASK + "\nRESOURCES = {'num_gpus': 1}\n")
    gpu_study = aq.Study(str(tmp_path / "gpu.db"), task=str(task))
    gpu_study.add_functions(["tanh(x)"])
    with pytest.raises(ValueError, match="asks for 1 GPU"):
        gpu_study.featurize(progress=False, executor=RayExecutor())
    with pytest.raises(ValueError, match="asks for 1 GPU"):
        gpu_study.run(budget=1, executor=RayExecutor(), progress=False)


def test_without_ray_the_option_says_how_to_install_it(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "ray", None)
    study = make_study(tmp_path / "s.db", n_extra=2)
    with pytest.raises(ImportError, match=r"pip install 'aquasurf_fast\[ray\]'"):
        study.run(fake_evaluate, budget=1, executor=make_executor("ray", 0), progress=False)
    from aquasurf_fast.cli import main

    assert main(["search", str(tmp_path / "s.db"), "--executor", "ray"]) == 1


def test_benchmark_build_on_ray_equals_the_local_build(tmp_path):
    from aquasurf_fast.bench.build import build_benchmark
    from aquasurf_fast.bench.format import load_benchmark

    task = tmp_path / "task.py"
    task.write_text(FAKE_TASK)
    names = ["tanh(x)", "mul(x,sigmoid(x))", "min(x,abs(x))", "mul(x,exp(x))", "div(x,zero(x))"]
    build_benchmark(str(tmp_path / "local.json"), str(task), names=names, workers=0,
                    progress=False)
    build_benchmark(str(tmp_path / "ray.json"), str(task), names=names, executor=RayExecutor(),
                    progress=False)
    local, remote = (load_benchmark(str(tmp_path / f), cache=False)
                     for f in ("local.json", "ray.json"))
    assert sorted(local.names) == sorted(remote.names)
    for name in local.names:
        i, j = local.class_of(name), remote.class_of(name)
        for key in ("val_acc", "test_acc", "train_loss"):
            a, b = local.metrics[key][i], remote.metrics[key][j]
            assert a == b or (np.isnan(a) and np.isnan(b))
        np.testing.assert_array_equal(local.fisher[i], remote.fisher[j])
