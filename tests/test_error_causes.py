"""Errors keep their cause: running out of memory stops a run instead of failing a candidate, and
the command line shows an error's traceback when asked to."""
import numpy as np
import pytest
import torch

import aquasurf_fast as aq
from aquasurf_fast.cli import main
from aquasurf_fast.execution.executors import InlineExecutor
from aquasurf_fast.fisher.candidates import fisher_features_for
from aquasurf_fast.runtime.memory import is_out_of_memory
from search_helpers import fake_evaluate, fake_score, make_study, synthetic_space
from sql_helpers import sql


class MemoryErrorAfter:
    """Scores ``n`` names, then runs out of memory on the next; remembers which."""

    def __init__(self, n):
        self.n = n
        self.seen = []

    def __call__(self, name):
        self.seen.append(name)
        if len(self.seen) > self.n:
            raise MemoryError("Unable to allocate 37.2 GiB for an array")
        return fake_score(name)


def test_out_of_memory_is_told_apart_from_other_errors():
    assert is_out_of_memory(MemoryError())
    assert is_out_of_memory(torch.cuda.OutOfMemoryError("CUDA out of memory"))
    assert not is_out_of_memory(RuntimeError("CUDA error: device-side assert triggered"))
    assert not is_out_of_memory(ValueError("out of memory"))  # the words alone are not the type


def test_a_memory_error_stops_the_run_and_leaves_the_class_claimable(tmp_path):
    study = make_study(tmp_path / "s.db", max_retries=3)
    evaluate = MemoryErrorAfter(5)
    with pytest.raises(aq.StudyError) as info:
        study.run(evaluate, budget=20, workers=0, progress=False)
    oom = evaluate.seen[-1]
    assert f"evaluating {oom} ran out of memory" in str(info.value)
    assert "Unable to allocate 37.2 GiB" in str(info.value)
    assert len(evaluate.seen) == 6  # no retry of the name, no further name
    counts = study.counts()
    assert (counts["done"], counts["running"], counts["failed"]) == (5, 0, 0)
    (row,) = [r for r in study.results(include_pending=True) if r["name"] == oom]
    assert row["status"] == "pending" and row["attempts"] == 0
    assert not [e for e in study.events(10_000) if e[1] == "failure"]
    # The next run takes the class (a baseline: no surrogate needed) up again.
    study.run(fake_evaluate, budget=8, workers=0, progress=False)
    (row,) = [r for r in study.results(include_pending=True) if r["name"] == oom]
    assert row["status"] == "done" and row["score"] == fake_score(oom)


class MemoryErrorFeaturizer:
    def __init__(self):
        self.calls = 0

    def __call__(self, build, names, inputs, targets, seed=42, device=None, progress=False):
        self.calls += 1
        raise MemoryError("Unable to allocate 12.0 GiB for the factors")


def test_a_memory_error_stops_featurize_and_marks_no_feature_invalid(tmp_path):
    classes, out, _ = synthetic_space(12)
    study = aq.Study(str(tmp_path / "s.db"), max_retries=2)
    study.add_classes(classes, out)
    featurizer = MemoryErrorFeaturizer()
    with pytest.raises(aq.StudyError, match="ran out of memory .*12.0 GiB"):
        study.featurize(build=object(), inputs=0, targets=0, featurizer=featurizer, chunk=4,
                        progress=False, embed=False, executor=InlineExecutor())
    assert featurizer.calls == 1  # not retried
    assert not sql(study, "SELECT 1 FROM classes WHERE fisher_ok IS NOT NULL")


def test_fisher_features_for_lets_a_memory_error_through():
    def build(activation):
        raise MemoryError("no room for the model")

    x, y = torch.randn(4, 3), torch.tensor([0, 1, 0, 1])
    with pytest.raises(MemoryError, match="no room"):
        fisher_features_for(build, ["relu(x)", "tanh(x)"], x, y, progress=False)
    # Any other error is still one function's invalid feature, with its reason.
    def broken(activation):
        raise RuntimeError("bad build")

    feats, ok, reasons = fisher_features_for(broken, ["relu(x)"], x, y, progress=False)
    assert not ok.any() and reasons == ["RuntimeError: bad build"] and np.isnan(feats).all()


def _search_fails(tmp_path, study):
    """A new study whose search fails on every evaluation (its task file's train_eval raises)."""
    task = tmp_path / "task.py"
    task.write_text("import torch\n"
                    "def build(activation):\n"
                    "    return torch.nn.Sequential(torch.nn.Linear(3, 2), activation)\n"
                    "def fisher_batch():\n"
                    "    return torch.randn(4, 3), torch.tensor([0, 1, 0, 1])\n"
                    "def train_eval(activation):\n"
                    "    raise ValueError('the loss diverged in epoch 3')\n")
    path = str(tmp_path / study)
    # Two attempts at each baseline make the ten failures in a row that stop a search, before
    # the surrogate (and its UMAP fit) is needed.
    make_study(path, n_extra=2, task=str(task), max_retries=1).close()
    return ["search", path, "--budget", "3", "--workers", "0", "--no-progress"]


@pytest.mark.parametrize("how", ["flag", "env"])
def test_debug_shows_the_traceback_of_an_error(capsys, monkeypatch, tmp_path, how):
    monkeypatch.delenv("AQUASURF_DEBUG", raising=False)
    assert main(_search_fails(tmp_path, "quiet.db")) == 1
    quiet = capsys.readouterr().err
    assert "aquasurf search: error:" in quiet and "in a row failed" in quiet
    assert "Traceback" not in quiet.split("error:")[0]  # the message alone, as before
    argv = _search_fails(tmp_path, "loud.db")
    if how == "flag":
        argv = ["--debug"] + argv
    else:
        monkeypatch.setenv("AQUASURF_DEBUG", "1")
    assert main(argv) == 1
    loud = capsys.readouterr().err
    before, message = loud.split("aquasurf search: error:")
    assert before.startswith("Traceback (most recent call last):")
    assert "loop.py" in before and "StudyError" in before  # where the run stopped
    assert "in a row failed" in message
