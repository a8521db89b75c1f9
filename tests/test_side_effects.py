"""The package leaves its caller's process as it found it (issue: no side effects on the caller)."""
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from torch import nn

import aquasurf_fast as aq


def test_fisher_features_for_leaves_the_callers_random_state_alone():
    x, y = torch.randn(32, 8), torch.randint(0, 4, (32,))
    build = lambda act: nn.Sequential(nn.Linear(8, 300), act, nn.Linear(300, 4))  # noqa: E731
    torch.manual_seed(1234)
    expected = torch.rand(3)
    torch.manual_seed(1234)
    feats, ok, _ = aq.fisher_features_for(build, ["relu(x)", "tanh(x)"], x, y, progress=False)
    assert ok.all()
    # The caller's stream continues where it was, not from the features' seed.
    assert torch.equal(torch.rand(3), expected)
    # And the features still come from the fixed seed: the same in a second call.
    again, _, _ = aq.fisher_features_for(build, ["relu(x)", "tanh(x)"], x, y, progress=False)
    np.testing.assert_array_equal(feats, again)


def test_a_task_file_gets_the_same_module_name_in_every_process(tmp_path):
    task = tmp_path / "my_task.py"
    task.write_text("def build(act):\n    return act\n\n"
                    "def fisher_batch():\n    return None, None\n\n"
                    "def train_eval(act):\n    return {'val_acc': 0.5}\n")
    script = ("import sys; from aquasurf_fast.tasks import load_task; "
              f"print(load_task({str(task)!r}).build.__module__)")
    names = set()
    for hash_seed in ("1", "2"):  # str hashes differ between these two processes
        env = dict(os.environ, PYTHONHASHSEED=hash_seed)
        out = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True,
                             text=True, check=True)
        names.add(out.stdout.strip())
    assert len(names) == 1 and names.pop().startswith("aquasurf_user_task_")


def test_a_type_error_inside_training_is_not_taken_for_a_missing_seed_argument(tmp_path):
    from aquasurf_fast.tasks import TaskEvaluator

    task = tmp_path / "buggy_task.py"
    task.write_text("def build(act):\n    return act\n\n"
                    "def fisher_batch():\n    return None, None\n\n"
                    "def train_eval(act, seed=0):\n"
                    "    raise TypeError(f'bad seed type in my own sampler: {seed!r}')\n")
    # The task's own error comes through as it is, not as "train_eval takes no seed=".
    with pytest.raises(TypeError, match="bad seed type in my own sampler"):
        TaskEvaluator(str(task), seeds=2)("tanh(x)")


def test_plotting_leaves_the_matplotlib_backend_alone(tmp_path):
    # A fresh process, so that the backend is whatever the caller chose, not a test's leftover.
    script = (
        "import matplotlib; matplotlib.use('svg'); import numpy as np\n"
        "from aquasurf_fast.study.plots import new_figure\n"
        "fig = new_figure(figsize=(3, 2)); ax = fig.subplots(); ax.plot([0, 1], [1, 0])\n"
        f"fig.savefig({str(tmp_path / 'f.png')!r})\n"
        "print(matplotlib.get_backend())\n")
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip().lower() == "svg"
    from PIL import Image

    pixels = np.asarray(Image.open(tmp_path / "f.png").convert("L"))
    assert pixels.shape == (200, 300) and pixels.min() < 128  # a line was drawn, not a blank
