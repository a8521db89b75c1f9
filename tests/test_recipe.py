"""A study's training recipe: the first search stores its epochs and precision, later searches
inherit them, and a search asking for others is refused while results exist (scores of two
recipes cannot be ranked together)."""
import textwrap

import pytest

from aquasurf_fast.cli import main
from aquasurf_fast.study import Study, StudyError
from aquasurf_fast.study.recipe import training_recipe
from aquasurf_fast.surrogate.strategy import DEFAULT_STRATEGY
from search_helpers import make_study

EPOCHS_TASK = textwrap.dedent("""
    import torch
    def build(activation):
        return torch.nn.Sequential(torch.nn.Linear(4, 300), activation, torch.nn.Linear(300, 2))
    def fisher_batch():
        return torch.randn(16, 4), torch.randint(0, 2, (16,))
    def train_eval(activation, epochs=100, amp=False):
        return {"val_acc": 0.5, "epochs": float(epochs), "amp": float(amp)}
""")


def cli_study(tmp_path):
    task = tmp_path / "task.py"
    task.write_text(EPOCHS_TASK)
    path = str(tmp_path / "s.db")
    assert main(["init", path, "--task", str(task), "--schema", "unary(x)", "--unary",
                 "relu,tanh,elu,sigmoid,softplus", "--baselines", "relu", "--no-progress"]) == 0
    assert main(["featurize", path, "--no-progress"]) == 0
    return path


def trained_with(path):
    with Study(path) as s:
        return sorted((m["epochs"], m["amp"]) for m in
                      (r["metrics"] for r in s.results(members=False) if r["status"] == "done"))


def test_a_resumed_search_without_options_trains_with_the_studys_recipe(tmp_path, capsys):
    path = cli_study(tmp_path)
    assert main(["search", path, "--budget", "2", "--workers", "0", "--epochs", "3", "--amp",
                 "--no-progress"]) == 0
    assert main(["search", path, "--budget", "4", "--workers", "0", "--no-progress"]) == 0
    assert trained_with(path) == [(3.0, 1.0)] * 4
    with Study(path) as s:
        assert s.settings["recipe"] == {"epochs": 3, "amp": True}


def test_a_search_with_other_epochs_is_refused_and_the_results_stay(tmp_path, capsys):
    path = cli_study(tmp_path)
    assert main(["search", path, "--budget", "2", "--workers", "0", "--epochs", "3",
                 "--no-progress"]) == 0
    capsys.readouterr()
    assert main(["search", path, "--budget", "4", "--workers", "0", "--epochs", "5",
                 "--strategy", "random", "--no-progress"]) != 0
    err = capsys.readouterr().err
    assert "trained with --epochs 3" in err and "asks for --epochs 5" in err
    assert trained_with(path) == [(3.0, 0.0)] * 2
    with Study(path) as s:  # the refused search changed no setting either
        assert s.settings["strategy"] == DEFAULT_STRATEGY and s.settings["recipe"] == {"epochs": 3}


def test_the_api_run_uses_the_stored_recipe(tmp_path):
    path = cli_study(tmp_path)
    with Study(path) as s:
        s.update_settings(recipe={"epochs": 7})
        s.run(budget=2, workers=0, progress=False)
    assert trained_with(path) == [(7.0, 0.0)] * 2


def test_before_any_result_the_given_options_replace_the_recipe(tmp_path):
    study = make_study(tmp_path / "s.db")
    assert training_recipe(study, epochs=4) == {"epochs": 4}
    assert training_recipe(study) == {"epochs": 4}  # none given: kept
    assert training_recipe(study, epochs=6, amp=True) == {"epochs": 6, "amp": True}
    (claim,) = study.suggest(1)
    study.tell(claim, 0.5)
    assert training_recipe(study) == {"epochs": 6, "amp": True}
    with pytest.raises(StudyError, match="the study's options"):
        training_recipe(study, epochs=2)
    assert study.settings["recipe"] == {"epochs": 6, "amp": True}


@pytest.mark.parametrize("recipe, message", [
    ({"epochs": 0}, "integer >= 1"), ({"epochs": 2.5}, "integer >= 1"), ({"amp": "yes"}, "true or false"),
    ({"lr": 0.1}, "not one of epochs, amp"), ([3], "must be a mapping")])
def test_a_malformed_recipe_is_refused(tmp_path, recipe, message):
    study = make_study(tmp_path / "s.db")
    with pytest.raises(StudyError, match=message):
        study.update_settings(recipe=recipe)
