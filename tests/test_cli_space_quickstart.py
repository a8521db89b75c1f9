"""``aquasurf space`` against the equivalence classes computed by the library, and ``aquasurf
quickstart`` from nothing to a printed top list on a tiny task."""
import re

import numpy as np
import pytest

import aquasurf_fast as aq
from aquasurf_fast.cli import main

UNARY = ["relu", "tanh", "zero", "one", "identity"]


def field(out, label):
    return int(re.search(rf"^\s*{label}\s+([\d,]+)", out, re.M).group(1).replace(",", ""))


def test_space_counts_names_classes_and_their_sizes(capsys):
    schema = "binary(unary(x),unary(x))"
    assert main(["space", schema, "--unary", ",".join(UNARY), "--show", "3"]) == 0
    out = capsys.readouterr().out
    names = aq.enumerate_schema(schema, unary=UNARY)
    classes = aq.equivalence_classes(names)
    finite = [np.isfinite(aq.output_features([c[0]])).all() for c in classes]
    assert field(out, "names") == len(names) == 175
    assert field(out, "classes") == len(classes)
    assert field(out, "finite outputs") == sum(finite)
    assert field(out, "NaN or inf outputs") == len(classes) - sum(finite)
    listed = re.findall(r"^\s+([\d,]+) names\s+e\.g\. (\S+)$", out, re.M)
    sizes = sorted((len(c) for c in classes), reverse=True)
    assert [int(n) for n, _ in listed] == sizes[:3]
    for n, example in listed:  # each example is a name of a class of that size
        (cls,) = [c for c in classes if example in c]
        assert len(cls) == int(n)


def test_space_of_the_benchmark_has_the_papers_class_count(capsys):
    assert main(["space"]) == 0
    out = capsys.readouterr().out
    assert field(out, "names") == 5103
    # The count equivalence_classes finds too (tests/test_features.py); the original TensorFlow
    # code found 2,913 to 2,916 (SPEC section 3) with its own float arithmetic.
    assert field(out, "classes") == 2907


def test_space_with_a_bad_schema_is_one_line(capsys):
    assert main(["space", "binary(unary(x)", "--unary", "relu"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "missing ')'" in err


TINY_TASK = """
import torch

def build(activation):
    return torch.nn.Sequential(torch.nn.Linear(8, 32), activation, torch.nn.Linear(32, 10))

def fisher_batch():
    g = torch.Generator().manual_seed(0)
    return torch.randn(64, 8, generator=g), torch.randint(0, 10, (64,), generator=g)

def train_eval(activation, seed=0):
    # A score that depends on the activation: its mean output on a fixed input.
    x = torch.linspace(-2, 2, 101)
    y = activation(x)
    score = float(torch.nan_to_num(y, nan=0.0, posinf=0.0, neginf=0.0).mean().tanh())
    return {"val_acc": score, "test_acc": score}
"""


@pytest.mark.slow
def test_quickstart_from_nothing_to_a_top_list(capsys, monkeypatch, tmp_path):
    # The benchmark space of one unary operator each: quickstart's every step (init, featurize,
    # search, top) on 27 names instead of 5,103, with a task that trains nothing.
    monkeypatch.setattr("aquasurf_fast.cli.commands.BENCHMARK_SCHEMA", "unary(x)")
    task = tmp_path / "tiny_task.py"
    task.write_text(TINY_TASK)
    study = tmp_path / "s.db"
    code = main(["quickstart", str(study), "--task", str(task), "--budget", "10",
                 "--workers", "0", "--top", "3", "--no-progress"])
    out, err = capsys.readouterr()
    assert code == 0, err
    with aq.Study(str(study)) as s:
        counts = s.counts()
        assert counts["names"] == 27 and counts["done"] == 10 and counts["running"] == 0
        assert s.has_fisher() and counts["candidates"] > 10
        top = s.top(3)
        done = {r["name"] for r in s.results()}
    assert set(f"{b}(x)" for b in ("elu", "relu", "selu", "sigmoid", "softplus", "softsign",
                                   "swish", "tanh")) <= done
    printed = [line.split()[1] for line in out.splitlines() if re.match(r"\s+\d+\s", line)]
    assert printed == [r["name"] for r in top]  # the study's top list, best first
    # Run again: the study is reused and already holds its budget; nothing is evaluated twice.
    assert main(["quickstart", str(study), "--task", str(task), "--budget", "10",
                 "--workers", "0", "--no-progress"]) == 0
    capsys.readouterr()
    with aq.Study(str(study)) as s:
        results = [e for e in s.events(10_000) if e[1] == "result"]
        assert len(results) == 10
