import csv
import json

import pytest

from aquasurf_fast.cli import main
from image_helpers import assert_png_drawn
from search_helpers import BASELINES, fake_evaluate, make_study

import aquasurf_fast as aq
from aquasurf_fast.surrogate.strategy import DEFAULT_STRATEGY
from sql_helpers import sql


def run_cli(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize("command", ["", "init", "featurize", "search", "status", "top", "plot",
                                     "export", "members", "quickstart"])
def test_help_everywhere(capsys, command):
    with pytest.raises(SystemExit) as exc:
        main(([command] if command else []) + ["--help"])
    assert exc.value.code == 0
    assert "usage: aquasurf" in capsys.readouterr().out


def test_missing_study_is_one_clear_line(capsys, tmp_path):
    code, out, err = run_cli(capsys, "status", tmp_path / "nope.db")
    assert code == 2 and err.count("\n") == 1 and "no such study" in err


def test_foreign_file_is_one_clear_line(capsys, tmp_path):
    (tmp_path / "x.db").write_text("not a study\n" * 20)
    code, out, err = run_cli(capsys, "top", tmp_path / "x.db")
    assert code == 1 and err.count("\n") == 1 and "not an aquasurf study" in err


def test_export_without_target_is_a_usage_error(capsys, tmp_path):
    make_study(tmp_path / "s.db", n_extra=2).close()
    code, _, err = run_cli(capsys, "export", tmp_path / "s.db")
    assert code == 2 and "--csv" in err


def test_status_top_plot_export_on_a_searched_study(capsys, tmp_path):
    path = tmp_path / "s.db"
    study = make_study(path, n_extra=12)
    study.run(fake_evaluate, budget=12, workers=0, progress=False)
    claim = study.suggest(1)[0]
    study.close()

    code, out, _ = run_cli(capsys, "status", path)
    assert code == 0 and "12 done, 1 running" in out and str(claim) in out and "best" in out

    code, out, _ = run_cli(capsys, "top", path, "-k", 3)
    assert code == 0 and len([l for l in out.splitlines() if l.strip()[:1].isdigit()]) == 3
    assert "ref" in out  # relu's line for comparison

    code, out, _ = run_cli(capsys, "plot", path, "--out", tmp_path / "plots")
    assert code == 0
    for png in ("embedding_observed.png", "embedding_predicted.png"):
        assert_png_drawn(tmp_path / "plots" / png, left=0.75)  # the points, not the colorbar
    assert_png_drawn(tmp_path / "plots" / "best_so_far.png")

    code, _, _ = run_cli(capsys, "export", path, "--csv", tmp_path / "r.csv",
                         "--json", tmp_path / "r.json")
    assert code == 0
    with open(tmp_path / "r.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 13 and {r["status"] for r in rows} == {"done", "running"}
    bench = json.loads((tmp_path / "r.json").read_text())
    # Every class is listed; the untrained ones (one running, the rest pending) with null metrics.
    assert len(bench) == 20 and set(BASELINES) <= set(bench)
    assert sum(row["Validation Accuracy"] is not None for row in bench.values()) == 12
    assert len(bench["relu"]["Fisher log eigenvalue CDF"]) == 40


@pytest.mark.slow
def test_end_to_end_on_a_tiny_space(capsys, tmp_path):
    names = tmp_path / "names.txt"
    names.write_text("# a tiny space\nmax(relu(x),tanh(x))\nmul(x,sigmoid(x))\nswish(x)\n"
                     "min(x,abs(x))\nadd(elu(x),softsign(x))\n")
    path = tmp_path / "s.db"
    code, out, err = run_cli(capsys, "init", path, "--task", "digits", "--names", names)
    assert code == 0, err
    code, out, err = run_cli(capsys, "featurize", path, "--no-progress")
    assert code == 0, err
    code, out, err = run_cli(capsys, "search", path, "--budget", 10, "--workers", 1,
                             "--no-progress")
    assert code == 0, err
    assert "relu" in out
    study = aq.Study(str(path))
    assert study.counts()["done"] == 10
    # mul(x,sigmoid(x)) and swish(x) are one class: evaluated once, reported for both.
    (row,) = [r for r in study.results() if "swish(x)" in r["members"]]
    assert "mul(x,sigmoid(x))" in row["members"]
    code, _, err = run_cli(capsys, "plot", path, "--out", tmp_path)
    assert code == 0, err


def test_init_builds_the_space_from_schemas_and_names(capsys, tmp_path):
    names = tmp_path / "names.txt"
    names.write_text("mul(x,sigmoid(x))  # swish\nmax(relu(x),tanh(x))\n")
    path = tmp_path / "s.db"
    code, out, err = run_cli(capsys, "init", path, "--schema", "binary(unary(x),unary(x))",
                             "--unary", "relu,tanh,identity", "--names", names,
                             "--baselines", "relu,swish")
    assert code == 0, err
    study = aq.Study(str(path))
    c = study.counts()
    # 7 binary ops x 3 x 3 = 63 schema names, 2 from the file, and swish(x) as a baseline
    assert c["names"] == 63 + 2 + 1
    members = {m: r["name"] for r in study.results(include_pending=True) for m in r["members"]}
    assert members["mul(x,sigmoid(x))"] == "swish(x)"  # the baseline names its class
    assert [str(s) for s in study.suggest(2)] == ["relu(x)", "swish(x)"]
    code, _, err = run_cli(capsys, "init", path)
    assert code == 2 and "already exists" in err


@pytest.mark.slow
def test_search_trains_with_the_engine_activation(capsys, tmp_path):
    """init -> (Fisher features stand-in) -> search with a worker process -> top, export."""
    import numpy as np

    names = tmp_path / "names.txt"
    names.write_text("max(relu(x),tanh(x))\nmul(x,sigmoid(x))\nmin(x,abs(x))\n")
    path = tmp_path / "s.db"
    assert run_cli(capsys, "init", path, "--task", "digits", "--names", names,
                   "--baselines", "relu,tanh")[0] == 0
    study = aq.Study(str(path))
    rows = sql(study, "SELECT canonical FROM classes WHERE out_finite = 1")
    # Any finite features will do: what is under test is the loop around them.
    feats = np.stack([np.linspace(0, 1, 12) ** (1 + i) for i in range(len(rows))])
    study.set_fisher_features([r[0] for r in rows], feats)
    study.close()
    code, out, err = run_cli(capsys, "search", path, "--budget", 3, "--workers", 1,
                             "--no-progress")
    assert code == 0, err
    assert "ref" in out and "relu" in out
    study = aq.Study(str(path))
    assert study.counts()["done"] == 3
    assert all(0.5 < r["score"] <= 1.0 and "test_acc" in r["metrics"] for r in study.top(3))


def _usage_error(capsys, *argv):
    """The exit code and stderr of a command that argparse refuses."""
    with pytest.raises(SystemExit) as exc:
        main([str(a) for a in argv])
    return exc.value.code, capsys.readouterr().err


def test_bench_replay_refuses_a_negative_pool(capsys, tmp_path):
    code, err = _usage_error(capsys, "bench", "replay", tmp_path / "b.json", "--pool", -1)
    assert code == 2 and "argument --pool: must be an integer >= 0, got '-1'" in err


def test_bench_build_refuses_zero_seeds_before_any_work(capsys, tmp_path):
    code, err = _usage_error(capsys, "bench", "build", "--seeds", 0, "--task", "digits",
                             "--space", "unary(x)", "--unary", "relu,tanh",
                             "--out", tmp_path / "b.json")
    assert code == 2 and "argument --seeds: must be an integer >= 1, got '0'" in err
    assert list(tmp_path.iterdir()) == []


def test_init_with_a_broken_task_file_is_one_clear_line(capsys, tmp_path):
    task = tmp_path / "task.py"
    task.write_text("def build(:\n    pass\n")
    code, out, err = run_cli(capsys, "init", tmp_path / "s.db", "--task", task,
                             "--schema", "unary(x)", "--unary", "relu,tanh")
    assert code == 1 and err.count("\n") == 1 and f"{task}:1: SyntaxError" in err
    assert not (tmp_path / "s.db").exists()


def test_init_with_a_bad_names_line_names_file_and_line(capsys, tmp_path):
    names = tmp_path / "names.txt"
    names.write_text("relu(x)\n# a comment\nadd(x,\n")
    code, out, err = run_cli(capsys, "init", tmp_path / "s.db", "--names", names, "--no-progress")
    assert code == 1 and err.count("\n") == 1 and f"{names}:3: 'add(x,'" in err
    assert "one expression per line" in err
    assert not (tmp_path / "s.db").exists()


BROKEN_BUILD_TASK = """
import torch

fisher_batch = (torch.zeros(4, 3), torch.zeros(4, dtype=torch.long))

def build(activation):
    raise RuntimeError("my build is broken")

def train_eval(activation):
    return {"val_acc": 0.5}
"""


def test_featurize_with_a_failing_build_says_why_and_search_refuses(capsys, tmp_path):
    task = tmp_path / "task.py"
    task.write_text(BROKEN_BUILD_TASK)
    names = tmp_path / "names.txt"
    names.write_text("max(relu(x),tanh(x))\nmul(x,sigmoid(x))\n")
    path = tmp_path / "s.db"
    assert run_cli(capsys, "init", path, "--task", task, "--names", names)[0] == 0
    code, out, err = run_cli(capsys, "featurize", path, "--no-progress")
    assert code == 1 and err.count("\n") == 1
    assert "Fisher features failed for all" in err and "my build is broken" in err
    code, out, err = run_cli(capsys, "search", path, "--budget", 2, "--no-progress")
    assert code == 2 and "no valid Fisher features" in err and "my build is broken" in err


def test_status_says_which_features_the_surrogate_uses(capsys, tmp_path):
    from search_helpers import synthetic_space

    classes, out, _ = synthetic_space(4)
    study = aq.Study(str(tmp_path / "s.db"))
    study.add_classes(classes, out)
    study.suggest(len(BASELINES) + 1)
    study.close()
    code, out, _ = run_cli(capsys, "status", tmp_path / "s.db")
    assert code == 0 and "features  output features alone" in out


def test_search_with_another_strategy_changes_it_and_logs_it(capsys, tmp_path):
    path = tmp_path / "s.db"
    make_study(path, n_extra=4, task="digits").close()
    code, out, err = run_cli(capsys, "search", path, "--strategy", "random", "--budget", 0,
                             "--no-progress")
    assert code == 0, err
    study = aq.Study(str(path))
    assert study.settings["strategy"] == "random"
    assert [e[4] for e in study.events() if e[1] == "settings"] == [
        '{"strategy": ["%s", "random"]}' % DEFAULT_STRATEGY]
