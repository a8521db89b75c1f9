"""Device names, the GPU each worker process takes, and the device and training options on their
way from the command line to the task."""
import os
import textwrap

import pytest
import torch

import aquasurf_fast as aq
from aquasurf_fast.cli import main
from aquasurf_fast.devices import resolve_device, visible_gpus, worker_gpu
from aquasurf_fast.execution.base import Raw
from aquasurf_fast.execution.executors import ProcessExecutor
from aquasurf_fast.study.featurize import FisherChunkJob
from aquasurf_fast.tasks import TaskEvaluator

NO_GPU = not torch.cuda.is_available()


class VisibleGpus:
    """A worker job that reports the GPUs its process may use."""

    def __call__(self, name):
        return Raw(os.environ.get("CUDA_VISIBLE_DEVICES"))


def test_device_names_resolve():
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device(" CPU ") == torch.device("cpu")
    assert resolve_device("auto").type == ("cpu" if NO_GPU else "cuda")
    assert resolve_device(None) == resolve_device("auto")


@pytest.mark.parametrize("bad", ["gpu", "cuda:", "cuda:x", "cpu:0", ""])
def test_a_malformed_device_names_the_argument_and_the_choices(bad):
    with pytest.raises(ValueError, match=f"--device {bad!r} is not a device: use auto, cpu"):
        resolve_device(bad, "--device")


@pytest.mark.skipif(not NO_GPU, reason="this machine has a GPU")
@pytest.mark.parametrize("name", ["cuda", "cuda:0", "cuda:3"])
def test_a_gpu_asked_for_without_one_is_one_clear_error(name):
    with pytest.raises(ValueError, match=f"device {name!r} asks for a GPU but"):
        resolve_device(name)


def test_workers_take_gpus_round_robin():
    assert [worker_gpu(i, ["0", "1", "2"]) for i in range(5)] == ["0", "1", "2", "0", "1"]
    assert worker_gpu(3, []) is None


def test_visible_gpus_follow_cuda_visible_devices_else_the_count(monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3, 5")
    assert visible_gpus() == ["3", "5"]
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    assert visible_gpus() == []
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES")
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 4)
    assert visible_gpus() == ["0", "1", "2", "3"]


def _seen_by_workers(n_workers, **kwargs):
    executor = ProcessExecutor(n_workers, **kwargs)
    executor.start(VisibleGpus())
    try:
        seen = {}
        for i in range(n_workers):
            executor.submit(str(i), f"job{i}")
        while len(seen) < n_workers:
            for outcome in executor.wait(1.0):
                assert outcome.ok, outcome.error
                seen[outcome.key] = outcome.value
    finally:
        executor.shutdown()
    return sorted(seen.values(), key=str)


def test_process_workers_take_one_gpu_each_with_a_fake_device_count(monkeypatch):
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert _seen_by_workers(3, one_gpu_each=True) == ["0", "0", "1"]


def test_task_evaluator_options_are_checked():
    with pytest.raises(ValueError, match="training option 'lr' is not one of device, epochs"):
        TaskEvaluator("digits", options={"lr": 0.1})
    with pytest.raises(ValueError, match="device 'tpu' is not a device"):
        TaskEvaluator("digits", options={"device": "tpu"})
    with pytest.raises(ValueError, match="epochs must be an integer >= 1, got 0"):
        TaskEvaluator("digits", options={"epochs": 0})
    assert TaskEvaluator("digits", options={"device": None, "epochs": 2}).options == {"epochs": 2}


def test_an_option_the_task_does_not_take_is_refused(tmp_path):
    path = tmp_path / "task.py"
    path.write_text(textwrap.dedent("""
        import torch
        def build(activation):
            return torch.nn.Sequential(torch.nn.Linear(4, 2), activation)
        fisher_batch = (torch.zeros(8, 4), torch.zeros(8, dtype=torch.int64))
        def train_eval(activation, epochs=3):
            return {"val_acc": float(epochs)}
    """))
    assert TaskEvaluator(str(path), options={"epochs": 2})("relu(x)") == {"val_acc": 2.0}
    with pytest.raises(ValueError, match="train_eval takes no device= argument"):
        TaskEvaluator(str(path), options={"device": "cpu"})("relu(x)")


def test_a_cpu_run_asks_ray_for_no_gpu():
    assert TaskEvaluator("cifar10-vit").resources == {"num_gpus": 1}
    assert TaskEvaluator("cifar10-vit", options={"device": "cpu"}).resources == {}
    assert FisherChunkJob("cifar10-vit", device="auto").resources == {"num_gpus": 1}
    assert FisherChunkJob("cifar10-vit", device="cpu").resources == {}


@pytest.mark.skipif(not NO_GPU, reason="this machine has a GPU")
@pytest.mark.parametrize("command", [["featurize", "STUDY"], ["search", "STUDY"],
                                     ["quickstart", "STUDY"],
                                     ["bench", "build", "--out", "STUDY.json"]])
def test_cli_device_cuda_without_a_gpu_is_one_line_before_any_work(capsys, tmp_path, command):
    study = str(tmp_path / "s.db")
    argv = [a.replace("STUDY", study) for a in command] + ["--device", "cuda"]
    if command[0] in ("featurize", "search"):
        assert main(["init", study, "--task", "digits", "--schema", "unary(x)", "--unary",
                     "relu,tanh", "--no-progress"]) == 0
        capsys.readouterr()
    before = _files(tmp_path)
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--device 'cuda' asks for a GPU but" in err
    assert _files(tmp_path) == before  # no study or benchmark made


def _files(folder):
    """The files in ``folder``, less SQLite's -wal and -shm companions, which come and go."""
    return sorted(f for f in os.listdir(folder) if not f.endswith(("-wal", "-shm")))


def test_cli_training_options_reach_train_eval(capsys, tmp_path, monkeypatch):
    path = tmp_path / "task.py"
    path.write_text(textwrap.dedent("""
        import os
        import torch
        def build(activation):
            return torch.nn.Sequential(torch.nn.Linear(4, 300), activation, torch.nn.Linear(300, 2))
        def fisher_batch():
            return torch.randn(16, 4), torch.randint(0, 2, (16,))
        def train_eval(activation, device="auto", epochs=100, amp=False, data_dir=None):
            return {"val_acc": 0.5, "on_cpu": float(device == "cpu"), "epochs": float(epochs),
                    "amp": float(amp), "data_dir_set": float(data_dir == os.environ.get("WANT"))}
    """))
    study = str(tmp_path / "s.db")
    assert main(["init", study, "--task", str(path), "--schema", "unary(x)", "--unary",
                 "relu,tanh", "--baselines", "relu", "--no-progress"]) == 0
    assert main(["featurize", study, "--device", "cpu", "--no-progress"]) == 0
    monkeypatch.setenv("WANT", str(tmp_path))
    before = os.environ.get("AQUASURF_DATA")
    assert main(["search", study, "--budget", "2", "--workers", "0", "--device", "cpu",
                 "--epochs", "3", "--amp", "--data-dir", str(tmp_path), "--no-progress"]) == 0
    assert os.environ.get("AQUASURF_DATA") == before  # --data-dir holds for the command only
    capsys.readouterr()
    from aquasurf_fast.study import Study

    with Study(study) as s:
        metrics = [r["metrics"] for r in s.results(members=False) if r["status"] == "done"]
    assert len(metrics) == 2
    for m in metrics:
        assert (m["on_cpu"], m["epochs"], m["amp"], m["data_dir_set"]) == (1.0, 3.0, 1.0, 1.0)


def test_the_search_device_reaches_the_featurization_of_a_grown_pool(tmp_path, monkeypatch):
    from bench_helpers import FAKE_TASK

    from aquasurf_fast.fisher import candidates

    task = tmp_path / "task.py"
    task.write_text(FAKE_TASK)
    study = aq.Study(str(tmp_path / "s.db"), task=str(task), strategy="random")  # no UMAP
    study.add_schema("binary(unary(x),unary(x))",
                     unary=("zero", "identity", "tanh", "relu", "elu", "sigmoid", "softplus"))
    study.featurize(pool=10, progress=False)
    devices = []
    real = candidates.fisher_features_for

    def spy(*args, **kwargs):
        devices.append(kwargs.get("device"))
        return real(*args, **kwargs)

    monkeypatch.setattr(candidates, "fisher_features_for", spy)
    stats = study.run(budget=8, workers=0, progress=False, grow=3, grow_every=2, device="cpu")
    assert stats["grown"] >= 3 and devices and set(devices) == {torch.device("cpu")}
