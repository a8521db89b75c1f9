import pickle
import re
import sys
import textwrap

import numpy as np
import pytest
import torch
from torch import nn

from aquasurf_fast.tasks import TaskEvaluator, load_task


@pytest.fixture(scope="module", autouse=True)
def private_cache(tmp_path_factory):
    """Generate MNIST-1D into a private cache so the test neither reads nor writes the user's."""
    from aquasurf_fast.tasks import mnist1d

    mp = pytest.MonkeyPatch()
    mp.setenv("AQUASURF_CACHE", str(tmp_path_factory.mktemp("cache")))
    mnist1d.arrays.cache_clear()
    mnist1d.splits.cache_clear()
    yield
    mnist1d.arrays.cache_clear()
    mnist1d.splits.cache_clear()
    mp.undo()


def _without_runtime(d):
    return {k: v for k, v in d.items() if k != "runtime"}


@pytest.mark.parametrize("name", ["mnist1d", "digits"])
def test_builtin_task_builds_and_has_a_fisher_batch(name):
    task = load_task(name)
    inputs, targets = task.fisher_batch()
    assert inputs.dtype == torch.float32 and targets.dtype == torch.int64
    assert inputs.shape[0] == targets.shape[0] == 256
    logits = task.build(nn.ReLU())(inputs)
    assert logits.shape == (256, 10)


def test_mnist1d_is_generated_offline_with_default_args_and_fixed_splits():
    from aquasurf_fast.tasks import mnist1d

    state = np.random.get_state()[1].copy()
    s = mnist1d.splits()
    np.testing.assert_array_equal(np.random.get_state()[1], state)  # caller's RNG untouched
    assert s["x_train"].shape == (3200, 1, 40) and s["x_val"].shape == (800, 1, 40)
    assert s["x_test"].shape == (1000, 1, 40)
    mnist1d.arrays.cache_clear()
    mnist1d.splits.cache_clear()
    again = mnist1d.splits()  # from the .npz cache this time
    torch.testing.assert_close(again["x_val"], s["x_val"])


@pytest.mark.slow
@pytest.mark.parametrize("name", ["mnist1d", "digits"])
def test_train_eval_is_deterministic_under_a_seed(name):
    task = load_task(name)
    mod = sys.modules[f"aquasurf_fast.tasks.{name}"]
    a = mod.train_eval(nn.Tanh(), seed=3, epochs=1)
    b = mod.train_eval(nn.Tanh(), seed=3, epochs=1)
    assert set(a) >= {"val_acc", "test_acc", "train_loss", "val_loss", "runtime"}
    assert _without_runtime(a) == _without_runtime(b)
    assert 0.0 <= a["val_acc"] <= 1.0
    assert task.train_eval is mod.train_eval


def test_user_task_from_file_and_module(tmp_path, monkeypatch):
    src = textwrap.dedent("""
        import torch
        from torch import nn
        fisher_batch = (torch.zeros(4, 3), torch.zeros(4, dtype=torch.long))
        def build(activation):
            return nn.Sequential(nn.Linear(3, 5), activation, nn.Linear(5, 2))
        def train_eval(activation):
            return {"val_acc": 0.5}
    """)
    (tmp_path / "my_task.py").write_text(src)
    by_file = load_task(str(tmp_path / "my_task.py"))
    assert by_file.fisher_batch()[0].shape == (4, 3)
    monkeypatch.syspath_prepend(str(tmp_path))
    by_module = load_task("my_task")
    assert by_module.train_eval(nn.ReLU()) == {"val_acc": 0.5}


def test_incomplete_or_unknown_task_is_refused(tmp_path):
    (tmp_path / "half.py").write_text("def build(a):\n    return a\n")
    with pytest.raises(ValueError, match="lacks fisher_batch, train_eval"):
        load_task(str(tmp_path / "half.py"))
    with pytest.raises(ValueError, match="unknown task"):
        load_task("no_such_task_module")
    with pytest.raises(ValueError, match="does not exist"):
        load_task(str(tmp_path / "missing.py"))


def test_task_evaluator_pickles_without_its_loaded_task():
    ev = TaskEvaluator("digits")
    ev._task = object()  # something unpicklable-in-spirit that must not travel
    clone = pickle.loads(pickle.dumps(ev))
    assert clone.spec == "digits" and clone._task is None


def test_task_file_that_fails_to_import_names_the_file_and_line(tmp_path):
    path = tmp_path / "broken.py"
    path.write_text("import math\n\ndef build(:\n    pass\n")
    with pytest.raises(ValueError, match=re.escape(f"task file {path}:3: SyntaxError")):
        load_task(str(path))
    path.write_text("import math\nx = 1 / 0\n")
    with pytest.raises(ValueError, match=re.escape(f"task file {path}:2: ZeroDivisionError")):
        load_task(str(path))


class Zero(nn.Module):
    """An activation that passes nothing on: no network can learn through it."""

    def forward(self, x):
        return torch.zeros_like(x)


@pytest.mark.parametrize("name, epochs, relu_beats, linear_below", [
    ("mnist1d", 3, 0.40, 0.35),  # chance is 0.10; a linear network reaches about 0.27
    ("digits", 4, 0.85, None),   # 8x8 digits are nearly linearly separable
])
def test_builtin_tasks_learn_with_relu_and_not_without_an_activation(name, epochs, relu_beats,
                                                                     linear_below):
    mod = sys.modules[load_task(name).train_eval.__module__]
    relu = mod.train_eval(nn.ReLU(), seed=0, epochs=epochs)
    assert relu["val_acc"] > relu_beats and relu["test_acc"] > relu_beats, relu
    assert mod.train_eval(Zero(), seed=0, epochs=epochs)["val_acc"] < 0.2  # chance, about 0.1
    if linear_below is not None:  # the activation is what the task measures
        assert mod.train_eval(nn.Identity(), seed=0, epochs=epochs)["val_acc"] < linear_below
