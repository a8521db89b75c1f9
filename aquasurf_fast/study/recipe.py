"""A study's training recipe: the options that change what a score means (``epochs``, ``amp``).

Scores trained for 8 epochs and for 2 cannot be compared, and a search that mixes them ranks
candidates by recipe rather than by quality. So the first search that trains stores the recipe it
used in the study (the ``recipe`` setting), a later search that gives no options trains with it,
and one that asks for another is refused while the study holds results. Options that do not
change scores (the device, the data folder) are not part of it.
"""
from __future__ import annotations

from typing import Any, Dict, Optional

from .store import StudyError

RECIPE_OPTIONS = ("epochs", "amp")


def check_recipe(recipe: Any) -> Dict[str, Any]:
    """``recipe`` as stored: a mapping of ``RECIPE_OPTIONS`` (None entries dropped), checked."""
    if not isinstance(recipe, dict):
        raise StudyError(f"recipe must be a mapping of {', '.join(RECIPE_OPTIONS)}, got {recipe!r}")
    out = {k: v for k, v in recipe.items() if v is not None}
    unknown = sorted(set(out) - set(RECIPE_OPTIONS))
    if unknown:
        raise StudyError(f"recipe option {unknown[0]!r} is not one of {', '.join(RECIPE_OPTIONS)}")
    epochs = out.get("epochs")
    if epochs is not None and (isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 1):
        raise StudyError(f"recipe epochs must be an integer >= 1, got {epochs!r}")
    if "amp" in out and not isinstance(out["amp"], bool):
        raise StudyError(f"recipe amp must be true or false, got {out['amp']!r}")
    return out


def _describe(recipe: Dict[str, Any]) -> str:
    parts = [f"--epochs {recipe['epochs']}" if "epochs" in recipe else None,
             "--amp" if recipe.get("amp") else None]
    return " ".join(p for p in parts if p) or "the task's own recipe"


def training_recipe(study, epochs: Optional[int] = None, amp: Optional[bool] = None) -> Dict[str, Any]:
    """The recipe a search of ``study`` trains with: the options given, else the stored ones.

    With no recipe stored yet, or no result yet, the given options become the study's recipe.
    Options that differ from the stored recipe of a study with results raise StudyError, which
    says how to go on. Returns the recipe (keywords for ``TaskEvaluator(options=)``)."""
    given = check_recipe({"epochs": epochs, "amp": amp})
    stored = study.settings.get("recipe")
    if stored is None:
        # The first recipe is recorded, not a change of settings: no "settings" event.
        study.store.set_meta(recipe=given)
        return given
    recipe = {**stored, **given}
    if not study.counts()["done"]:
        study.update_settings(recipe=recipe)  # logged when it changes
        return recipe
    if recipe != stored:
        raise StudyError(
            f"{study.path} holds results trained with {_describe(stored)}; this search asks for "
            f"{_describe(recipe)}, and scores of the two could not be compared. Run it with the "
            "study's options (or none: they are kept), or start another study; "
            "study.update_settings(recipe=...) changes the recipe on purpose")
    return recipe


def task_evaluator(study, device: Any = None, epochs: Optional[int] = None,
                   amp: Optional[bool] = None, data_dir: Optional[str] = None, seeds: int = 1,
                   known_runs=None):
    """The ``TaskEvaluator`` of ``study``'s task on its recipe (``training_recipe(study, epochs,
    amp)``), training on ``device`` with data from ``data_dir``, under ``seeds`` seeds of which
    ``known_runs`` are trained already (a benchmark's). Refuses a study without a task."""
    spec = study.settings.get("task")
    if not spec:
        raise StudyError("this study has no task: pass evaluate=, or create it with a task")
    recipe = training_recipe(study, epochs, amp)
    from ..tasks import TaskEvaluator

    return TaskEvaluator(spec, seeds, known_runs=known_runs,
                         options={"device": device, "epochs": epochs, "amp": amp,
                                  "data_dir": data_dir, **recipe})


__all__ = ["RECIPE_OPTIONS", "check_recipe", "task_evaluator", "training_recipe"]
