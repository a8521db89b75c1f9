"""What the study commands and the ``bench`` commands share: the usage error, opening a study,
the --unary choice and the executor options."""
from __future__ import annotations

import argparse
import contextlib
import os
from typing import Optional


class UsageError(Exception):
    """A mistake on the command line: reported in one line, without a traceback."""


def open_study(path: str):
    """The study at ``path``."""
    from ..study import Study

    if not os.path.exists(path):
        raise UsageError(f"{path}: no such study (create it with `aquasurf init {path} ...`)")
    return Study(path)


def add_strategy_option(sp, default: Optional[str] = None) -> None:
    """--strategy: how candidates are chosen after the baselines."""
    from ..surrogate.strategy import DEFAULT_STRATEGY, STRATEGY_NAMES

    kept = (f"default: the study's own, {DEFAULT_STRATEGY} for a new one" if default is None
            else f"default {default}")
    sp.add_argument("--strategy", choices=STRATEGY_NAMES, default=default,
                    help="search strategy after the baselines: adaptive (k-NN on several UMAP "
                         "layouts or on the output features, whichever predicts this task's "
                         "results better, after picks spread over the space), hybrid (the two in "
                         "turn), ensemble (k-NN averaged over several layouts, after the same "
                         f"picks), paper (the paper's k-NN on one layout) or random ({kept})")


def unary_ops(choice: str):
    """--unary: "benchmark" (the paper's 27), "all" (31) or a comma-separated list."""
    from ..expr import BENCHMARK_UNARY_OPS, UNARY_OPS

    if choice == "benchmark":
        return BENCHMARK_UNARY_OPS
    if choice == "all":
        return UNARY_OPS
    return tuple(u.strip() for u in choice.split(",") if u.strip())


def int_at_least(minimum: int):
    """An argparse ``type``: an integer >= ``minimum``, refused while the command line is read,
    before any work, as "argument --NAME: must be an integer >= M, got 'V'"."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = None
        if value is None or value < minimum:
            raise argparse.ArgumentTypeError(f"must be an integer >= {minimum}, got {text!r}")
        return value

    parse.__name__ = f"integer >= {minimum}"
    return parse


def add_no_progress(sp) -> None:
    sp.add_argument("--no-progress", action="store_true", help="no progress bars")


def add_unary_option(sp) -> None:
    """--unary, read by ``unary_ops``."""
    sp.add_argument("--unary", default="benchmark",
                    help="unary ops of schemas: benchmark (the 27 of the paper), all, or a "
                         "comma-separated list (default benchmark)")


def add_device_option(sp, what: str, default: str) -> None:
    """--device: where the networks of ``what`` run."""
    sp.add_argument("--device", metavar="DEVICE",
                    help=f"the device of {what}: auto (a GPU when there is one), cpu, cuda or "
                         f"cuda:N ({default}); local worker processes take one GPU each, "
                         "round-robin, with auto or cuda")


def add_training_options(sp) -> None:
    """--epochs, --amp, --data-dir: passed on to the task's train_eval (see TaskEvaluator)."""
    sp.add_argument("--epochs", type=int_at_least(1),
                    help="training epochs per candidate (default: the study's recipe, else the "
                         "task's); the study keeps it, and once it has results another value is "
                         "refused, so that its scores never mix recipes")
    sp.add_argument("--amp", action="store_true", default=None,
                    help="train in mixed precision (float16 on a GPU, bfloat16 on the CPU); kept "
                         "in the study's recipe like --epochs")
    sp.add_argument("--data-dir", metavar="DIR",
                    help="folder of the datasets of the CIFAR tasks (default $AQUASURF_DATA, else "
                         "$AQUASURF_CACHE/datasets); downloaded there on first use")


def checked_device(args) -> Optional[str]:
    """--device, checked now, in this process: a malformed name, or a GPU asked for on a machine
    without one, is one error before any work. With Ray the workers' GPUs are not this
    machine's, so only the name is checked there."""
    from ..devices import check_device_name, resolve_device

    device = getattr(args, "device", None)
    try:
        if getattr(args, "executor", "local") != "ray" and device is not None:
            resolve_device(device, "--device")
        args.device = check_device_name(device, "--device")
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    return args.device


@contextlib.contextmanager
def data_dir_env(args):
    """--data-dir as AQUASURF_DATA while a command runs, restored afterwards: worker processes
    started meanwhile inherit it, so the tasks' Fisher batch (which workers read through
    ``fisher_batch()``, a function of no arguments) comes from that folder too."""
    data_dir = getattr(args, "data_dir", None)
    if data_dir is None:
        yield
        return
    before = os.environ.get("AQUASURF_DATA")
    os.environ["AQUASURF_DATA"] = os.path.abspath(data_dir)
    try:
        yield
    finally:
        if before is None:
            del os.environ["AQUASURF_DATA"]
        else:
            os.environ["AQUASURF_DATA"] = before


def training_options(args) -> dict:
    """The options of ``add_training_options`` and --device, for ``TaskEvaluator(options=)``."""
    return {"device": checked_device(args), "epochs": getattr(args, "epochs", None),
            "amp": getattr(args, "amp", None), "data_dir": getattr(args, "data_dir", None)}


def executor_from_args(args, workers: Optional[int], timeout: Optional[float] = None,
              in_process: bool = False):
    """The executor of --executor/--address/--gpus/--workers.

    ``workers`` None means the default: one local process per CPU, or as many Ray tasks as the
    cluster has CPUs. With ``in_process`` the local default is None (this process does the work).
    Local workers take one GPU each unless --device names one GPU or the CPU.
    """
    from ..execution.executors import make_executor

    if args.executor == "local" and in_process:
        if args.address:
            raise UsageError("--address only applies to --executor ray")
        return None
    if workers is None:
        workers = 0 if args.executor == "ray" else max(1, os.cpu_count() or 1)
    try:
        return make_executor(args.executor, workers, address=args.address, timeout=timeout,
                             gpus=args.gpus,
                             one_gpu_each=getattr(args, "device", None) in (None, "auto", "cuda"))
    except ValueError as exc:
        raise UsageError(str(exc)) from None


def add_executor_options(sp, what: str, workers: bool = True) -> None:
    if workers:
        sp.add_argument("--workers", type=int,
                        help="worker processes (default: number of CPUs; 0 runs in this process); "
                             "with Ray, tasks at once (default: the cluster's CPUs)")
    sp.add_argument("--executor", choices=["local", "ray"], default="local",
                    help=f"where {what} runs: local processes (default) or a Ray cluster "
                         "(pip install 'aquasurf_fast[ray]')")
    sp.add_argument("--address", help="Ray cluster address (e.g. auto, or HOST:6379); default: a "
                                      "local Ray instance for this run")
    sp.add_argument("--gpus", type=float, help="GPUs per Ray task (default 0)")


__all__ = ["UsageError", "add_device_option", "add_executor_options", "add_no_progress",
           "add_training_options", "add_unary_option", "checked_device", "executor_from_args",
           "data_dir_env", "int_at_least", "open_study", "training_options", "unary_ops"]
