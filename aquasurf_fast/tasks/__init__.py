"""Training tasks a study evaluates candidates on.

A task is anything exposing three things:

- ``build(activation) -> torch.nn.Module``: the network, with ``activation`` (a module) placed
  wherever the architecture applies its nonlinearity;
- ``fisher_batch``: the fixed ``(inputs, targets)`` batch of the Fisher features, or a function of
  no arguments returning it;
- ``train_eval(activation) -> dict``: train the network and return at least ``val_acc`` (the score the
  search maximises), and ideally ``test_acc``, ``train_loss``, ``val_loss`` and ``runtime``.
  It may take the keywords ``seed``, ``device``, ``epochs``, ``amp`` and ``data_dir``, which
  ``TaskEvaluator`` passes on from the command line's options.

Optionally ``RESOURCES``: what one evaluation needs on a cluster, e.g. ``{"num_gpus": 1}``; the Ray
executor requests it for every task.

Built in: ``mnist1d`` and ``digits`` (small, on the CPU), and the paper's networks on CIFAR,
``cifar100-allcnnc``, ``cifar10-resnet20`` and ``cifar10-vit`` (on a GPU when there is one; each
module's docstring gives its training recipe). A user task is a Python file
(``path/to/task.py``) or an importable module (``mypackage.mytask``) with the same names.
"""
from __future__ import annotations

import hashlib
import importlib
import inspect
import importlib.util
import math
import os
import sys
import traceback
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Optional, Tuple

BUILTIN_TASKS = ("mnist1d", "digits", "cifar100-allcnnc", "cifar10-resnet20", "cifar10-vit")
# What ``TaskEvaluator(options=...)`` may pass on to a task's ``train_eval`` as keywords.
TRAIN_OPTIONS = ("device", "epochs", "amp", "data_dir")


@dataclass(frozen=True)
class Task:
    spec: str
    build: Callable[[Any], Any]
    train_eval: Callable[[Any], dict]
    _fisher_batch: Any
    resources: dict = field(default_factory=dict)  # RESOURCES, {} when the task names none

    def fisher_batch(self) -> Tuple[Any, Any]:
        batch = self._fisher_batch() if callable(self._fisher_batch) else self._fisher_batch
        if not (isinstance(batch, (tuple, list)) and len(batch) == 2):
            raise ValueError(f"task {self.spec}: fisher_batch must be an (inputs, targets) pair")
        return batch[0], batch[1]


def resolve_spec(spec: str) -> str:
    """A task spec that means the same from any directory: built-in name, absolute file, module."""
    if spec in BUILTIN_TASKS:
        return spec
    if spec.endswith(".py") or os.sep in spec:
        if not os.path.isfile(spec):
            raise ValueError(f"task file {spec!r} does not exist")
        return os.path.abspath(spec)
    return spec


def _import_failure(path: str, exc: BaseException) -> ValueError:
    """A one-line error for a task file that fails to import, at the file's own line that failed
    (a syntax error's line, or the last frame of the traceback inside the file)."""
    if isinstance(exc, SyntaxError):
        line, text = exc.lineno, exc.msg
    else:
        frames = [f for f in traceback.extract_tb(exc.__traceback__)
                  if os.path.abspath(f.filename) == path]
        line, text = (frames[-1].lineno if frames else "?"), str(exc)
    return ValueError(f"task file {path}:{line}: {type(exc).__name__}: {text} (a task file must "
                      "import without errors)")


def _takes(fn, keyword: str) -> bool:
    """Whether ``fn`` accepts ``keyword=``: read from its signature, not guessed from a TypeError
    (which may come from inside the training and mention a seed of its own)."""
    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return True  # no signature to read (a builtin, a C extension): let the call decide
    return any(p.name == keyword and p.kind != p.POSITIONAL_ONLY or p.kind == p.VAR_KEYWORD
               for p in params)


def _checked_options(options: Optional[Mapping[str, Any]]) -> dict:
    """``options`` without its None entries, each checked: a known name and a valid value."""
    from ..devices import check_device_name

    out = {k: v for k, v in (options or {}).items() if v is not None}
    unknown = sorted(set(out) - set(TRAIN_OPTIONS))
    if unknown:
        raise ValueError(f"training option {unknown[0]!r} is not one of {', '.join(TRAIN_OPTIONS)}")
    if "device" in out:
        out["device"] = check_device_name(out["device"])
    if "epochs" in out and (isinstance(out["epochs"], bool) or not isinstance(out["epochs"], int)
                            or out["epochs"] < 1):
        raise ValueError(f"epochs must be an integer >= 1, got {out['epochs']!r}")
    if "data_dir" in out:
        out["data_dir"] = os.path.abspath(out["data_dir"])
    return out


def _load_module(spec: str):
    if spec in BUILTIN_TASKS:
        return importlib.import_module(f"aquasurf_fast.tasks.{spec.replace('-', '_')}")
    if spec.endswith(".py") or os.path.isfile(spec):
        if not os.path.isfile(spec):
            raise ValueError(f"task file {spec!r} does not exist")
        # A name every process derives alike (hash() of a str is salted per process), so that
        # worker processes find the module their pickled references name.
        digest = hashlib.sha256(os.path.abspath(spec).encode()).hexdigest()[:16]
        name = "aquasurf_user_task_" + digest
        if name in sys.modules:
            return sys.modules[name]
        module_spec = importlib.util.spec_from_file_location(name, spec)
        module = importlib.util.module_from_spec(module_spec)
        sys.modules[name] = module  # worker processes unpickle references to it by this name
        try:
            module_spec.loader.exec_module(module)
        except BaseException as exc:
            del sys.modules[name]
            # sys.exit() in a task file is its error too, not an exit of the process importing it;
            # Ctrl-C still stops that process.
            if isinstance(exc, (Exception, SystemExit)):
                raise _import_failure(os.path.abspath(spec), exc) from exc
            raise
        return module
    try:
        return importlib.import_module(spec)
    except ModuleNotFoundError as exc:
        raise ValueError(
            f"unknown task {spec!r}: use {', '.join(BUILTIN_TASKS)}, a .py file, or an importable "
            f"module ({exc})"
        ) from None


def load_task(spec: str) -> Task:
    """The task named by ``spec`` (built-in name, Python file, or module path)."""
    spec = resolve_spec(spec)
    module = _load_module(spec)
    missing = [n for n in ("build", "fisher_batch", "train_eval") if not hasattr(module, n)]
    if missing:
        raise ValueError(f"task {spec!r} lacks {', '.join(missing)} (see aquasurf_fast.tasks)")
    resources = getattr(module, "RESOURCES", None)
    if resources is not None and not isinstance(resources, dict):
        raise ValueError(f"task {spec!r}: RESOURCES must be a dict such as {{'num_gpus': 1}}")
    return Task(spec, module.build, module.train_eval, module.fisher_batch, dict(resources or {}))


class TaskEvaluator:
    """``evaluate(name)`` for a study: train the task with ``aq.Activation(name)``.

    With ``seeds`` > 1 it trains under seeds 0..seeds-1 (the task's ``train_eval`` must take
    ``seed=``) and returns the median run: the one whose validation accuracy is the median (the
    lower middle for an even count), so that all its metrics come from one training; it adds
    ``seeds``, ``val_acc_min``, ``val_acc_max`` and each run's ``val_acc_seed<S>`` and
    ``test_acc_seed<S>``, and ``runtime`` is the total. With one seed the task trains under its
    own default seed, exactly as a search does.

    ``known_runs`` maps a name to runs already trained, ``{seed: metrics}`` (a benchmark built
    with fewer seeds): those seeds are not trained again, so extending a build costs only the
    missing seeds.

    ``options`` are keywords for every ``train_eval`` call, from ``TRAIN_OPTIONS``: ``device``
    (auto, cpu, cuda, cuda:N), ``epochs``, ``amp`` (mixed precision), ``data_dir``; None entries
    are left out, so the task's own defaults hold. A task whose ``train_eval`` does not take one
    that is given is refused when it is loaded.

    Picklable (it carries only the task spec, the options and the known runs) so worker
    processes load the task themselves.
    """

    def __init__(self, spec: str, seeds: int = 1,
                 known_runs: Optional[Mapping[str, Mapping[int, Mapping[str, Any]]]] = None,
                 options: Optional[Mapping[str, Any]] = None):
        if seeds < 1:
            raise ValueError(f"seeds must be at least 1, got {seeds}")
        self.spec = resolve_spec(spec)
        self.seeds = int(seeds)
        self.known_runs = {name: {int(s): dict(m) for s, m in runs.items()}
                           for name, runs in (known_runs or {}).items()}
        self.options = _checked_options(options)
        self._task = None

    def __getstate__(self):
        return {"spec": self.spec, "seeds": self.seeds, "known_runs": self.known_runs,
                "options": self.options, "_task": None}

    def _loaded(self) -> Task:
        if self._task is None:
            task = load_task(self.spec)
            refused = [k for k in self.options if not _takes(task.train_eval, k)]
            if refused:
                raise ValueError(f"task {self.spec}: train_eval takes no {refused[0]}= argument, "
                                 f"so the {refused[0]} option cannot reach its training; add the "
                                 "parameter to train_eval or leave the option out")
            self._task = task
        return self._task

    @property
    def resources(self) -> dict:
        """What the task asks for per evaluation on a cluster (its ``RESOURCES``), less the GPU
        when the evaluations are to run on the CPU."""
        resources = dict(self._loaded().resources)
        if self.options.get("device") == "cpu":
            resources.pop("num_gpus", None)
        return resources

    def _train(self, name: str, seed: int) -> dict:
        from ..nn import Activation

        train_eval = self._loaded().train_eval
        if not _takes(train_eval, "seed"):
            raise ValueError(f"task {self.spec}: train_eval takes no seed= argument, so it "
                             "cannot be trained under several seeds; use seeds=1")
        return dict(train_eval(Activation(name), seed=seed, **self.options))

    def __call__(self, name: str) -> dict:
        from ..nn import Activation

        if self.seeds == 1:
            return dict(self._loaded().train_eval(Activation(name), **self.options))
        known = self.known_runs.get(name, {})
        runs = [dict(known[seed]) if seed in known else self._train(name, seed)
                for seed in range(self.seeds)]
        accs = [_finite_or(r.get("val_acc"), -math.inf) for r in runs]
        order = sorted(range(len(runs)), key=lambda i: accs[i])
        median = dict(runs[order[(len(runs) - 1) // 2]])
        median.update(seeds=self.seeds, val_acc_min=min(accs), val_acc_max=max(accs),
                      runtime=sum(r.get("runtime") or 0.0 for r in runs))
        for seed, run in enumerate(runs):
            median[f"val_acc_seed{seed}"] = _finite_or(run.get("val_acc"), math.nan)
            median[f"test_acc_seed{seed}"] = _finite_or(run.get("test_acc"), math.nan)
        return median


def _finite_or(value: Any, default: float) -> float:
    """``value`` as a float when it is a finite number, else ``default`` (a diverged run's NaN)."""
    return float(value) if value is not None and math.isfinite(value) else default


__all__ = ["BUILTIN_TASKS", "TRAIN_OPTIONS", "Task", "TaskEvaluator", "load_task", "resolve_spec"]
