"""``aquasurf bench fisher`` and ``aq.benchmark_fisher``: the spectrum check, the report, the JSON
and the errors. Tiny batches, two candidates, one repeat: these test the plumbing, not speed."""
import json
import sys

import pytest
import torch

import aquasurf_fast as aq
from aquasurf_fast.bench import fisher_check
from aquasurf_fast.cli import main

ATTENTION_TASK = '''
import torch
from torch import nn


class Tiny(nn.Module):
    """Tokens -> self-attention -> activation -> class: a model no built-in task has."""

    def __init__(self, activation):
        super().__init__()
        self.embed = nn.Linear(6, 16)
        self.attention = nn.MultiheadAttention(16, 2, batch_first=True)
        self.activation = activation
        self.head = nn.Linear(16 * 5, 3)

    def forward(self, x):
        h = self.embed(x)
        h = self.activation(h + self.attention(h, h, h, need_weights=False)[0])
        return self.head(h.flatten(1))


def build(activation):
    return Tiny(activation)


def fisher_batch():
    gen = torch.Generator().manual_seed(0)
    return torch.randn(12, 5, 6, generator=gen), torch.randint(0, 3, (12,), generator=gen)


def train_eval(activation):
    return {"val_acc": 0.0}
'''


def run_cli(capsys, *argv):
    code = main(["bench", "fisher", "--device", "cpu", "--repeats", "1", *map(str, argv)])
    out, err = capsys.readouterr()
    return code, out, err


def test_mnist1d_runs_checks_and_writes_every_figure(capsys, tmp_path):
    path = tmp_path / "fisher.json"
    code, out, err = run_cli(capsys, "--task", "mnist1d", "--batch", 8, 16, "--candidates", 2,
                             "--against", "plain", "--json", path)
    assert code == 0, err
    assert "spectra equal the plain float64 pipeline's: 4 layers" in out
    assert "plain/ours" in out and "ours/floor" in out and "K = " in out
    figures = json.loads(path.read_text())
    assert {"cpu", "gpu", "torch_threads", "torch", "numpy", "aquasurf_fast"} <= set(figures["machine"])
    assert [b["batch"] for b in figures["batches"]] == [8, 16]
    first = figures["batches"][0]
    assert first["check"]["n_layers"] == 4 and first["check"]["max_abs_error"] <= fisher_check.ATOL
    assert figures["batches"][1]["check"] is None  # checked once, on the smallest batch
    assert first["floor_seconds"] > 0 and first["matmul_rate"] > 0
    assert {"one_at_a_time", "batched", "pass_sizes", "per_pass"} <= set(first["throughput"])
    timed = [r for r in first["rows"] if not r["error"]]
    assert timed, first["rows"]
    for row in timed:
        assert set(row["stages"]) == {"fwd/bwd", "factors", "eigen", "hist"}
        assert row["seconds"] > 0 and row["baselines"]["plain"] > 0
        assert {"plain/ours", "ours/floor"} == set(row["ratios"])


def test_task_file_with_attention(capsys, tmp_path):
    task = tmp_path / "attention_task.py"
    task.write_text(ATTENTION_TASK)
    code, out, err = run_cli(capsys, "--task", task, "--candidates", 2, "--against", "plain")
    assert code == 0, err
    # embed, the attention's q, k, v and out projections, head
    assert "spectra equal the plain float64 pipeline's: 6 layers" in out


def _broken_spectrum(monkeypatch):
    real = fisher_check.fisher_spectrum

    def broken(*args, **kwargs):
        spectrum = real(*args, **kwargs)
        spectrum.layers[-1].eig_G = spectrum.layers[-1].eig_G * 1.01
        return spectrum

    monkeypatch.setattr(fisher_check, "fisher_spectrum", broken)


def test_broken_spectrum_fails_in_one_line(capsys, monkeypatch):
    _broken_spectrum(monkeypatch)
    code, out, err = run_cli(capsys, "--task", "mnist1d", "--batch", 8, "--against", "plain")
    assert code == 1
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert "differs from the plain float64 pipeline's" in err and "factor G" in err


def test_broken_spectrum_raises_from_the_function(monkeypatch):
    _broken_spectrum(monkeypatch)
    x, y = torch.randn(6, 4), torch.randint(0, 3, (6,))
    build = lambda act: torch.nn.Sequential(torch.nn.Linear(4, 30), act, torch.nn.Linear(30, 3))  # noqa: E731
    with pytest.raises(fisher_check.SpectrumMismatch):
        aq.benchmark_fisher(build, x, y, functions=["relu(x)"], repeats=1, device="cpu", against=())


def test_curvlinops_absent_is_a_note(capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "curvlinops", None)  # import curvlinops raises ImportError
    code, out, err = run_cli(capsys, "--task", "mnist1d", "--batch", 8, "--candidates", 2,
                             "--against", "curvlinops")
    assert code == 0, err
    assert "note: curvlinops: curvlinops is not installed" in out
    assert "Traceback" not in out + err


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without a GPU")
def test_cuda_without_gpu_is_one_error_line(capsys):
    code, out, err = run_cli(capsys, "--task", "mnist1d", "--device", "cuda")
    assert code == 2
    assert len(err.strip().splitlines()) == 1 and "asks for a GPU" in err


@pytest.mark.parametrize("argv, message", [
    (["--task", "no-such-task"], "unknown task"),
    (["--task", "mnist1d", "--functions", "/nonexistent/names.txt"], "cannot read the functions file"),
    (["--task", "mnist1d", "--against", "numpy"], "unknown baseline 'numpy'"),
])
def test_bad_input_is_one_error_line(capsys, argv, message):
    code, out, err = run_cli(capsys, *argv)
    assert code != 0 and message in err and "Traceback" not in err


def test_bad_batch_is_refused_before_any_work(capsys):
    with pytest.raises(SystemExit) as exc:
        run_cli(capsys, "--task", "mnist1d", "--batch", 0)
    assert exc.value.code == 2
    assert "--batch: must be an integer >= 1" in capsys.readouterr().err


def test_functions_file_names_the_candidates(capsys, tmp_path):
    names = tmp_path / "names.txt"
    names.write_text("# two functions\nrelu( x )\n\ntanh(x)  # and a comment\n")
    code, out, err = run_cli(capsys, "--task", "mnist1d", "--batch", 8, "--functions", names,
                             "--against", "none")
    assert code == 0, err
    assert "relu(x) " in out and "tanh(x) " in out and "plain/ours" not in out


def test_bad_function_name_names_its_line(capsys, tmp_path):
    names = tmp_path / "names.txt"
    names.write_text("relu(x)\nrelu(x\n")
    code, out, err = run_cli(capsys, "--task", "mnist1d", "--functions", names)
    assert code == 2 and f"{names}:2:" in err
