"""The ``aquasurf`` command: create a study, featurize it, search, inspect, plot and export."""
from __future__ import annotations

import argparse
import math
import os
import sys
import time
import traceback
from typing import List, Optional, Sequence

from ..defaults import DEFAULT_GROW, DEFAULT_GROW_EVERY
from ..expr import BENCHMARK_SCHEMA
from ..surrogate.regression import REGRESSOR_NAMES
from ..surrogate.strategy import DEFAULT_STRATEGY
from .bench import add_bench_parsers
from .dashboard import add_dashboard_parsers
from .info import add_info_parser
from .common import (UsageError, add_device_option, add_executor_options, add_no_progress,
                     add_strategy_option, add_training_options, add_unary_option, checked_device,
                     data_dir_env, executor_from_args, open_study, training_options, unary_ops)


def _fmt(x: Optional[float], digits: int = 4) -> str:
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "-"
    return f"{x:.{digits}f}"


def _seconds(x: Optional[float]) -> str:
    if x is None or not math.isfinite(x):
        return "-"
    return f"{x:.2f}s" if abs(x) < 1 else f"{x:.1f}s"  # a placement takes hundredths


def _age(seconds: float) -> str:
    seconds = max(0, int(seconds))
    if seconds < 120:
        return f"{seconds}s"
    if seconds < 7200:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{(seconds % 3600) // 60:02d}m"


# -- init ------------------------------------------------------------------------------------------

def cmd_init(args, next_step: bool = True) -> int:
    from ..expr import SchemaSpace
    from ..study.study import Study
    from ..study.store import remove_study_files

    if os.path.exists(args.study):
        if not args.force:
            raise UsageError(f"{args.study} already exists (use --force to replace it)")
        remove_study_files(args.study)
    if args.task:
        from ..tasks import load_task

        load_task(args.task)  # fail now, not at featurize time, on a misspelt task
    baselines = None
    if args.baselines is not None:
        baselines = [b.strip() for b in args.baselines.split(",") if b.strip()]
    unary = unary_ops(args.unary)
    schemas = list(args.schema or [])
    if not schemas and not args.names:
        schemas = [BENCHMARK_SCHEMA]
    for schema in schemas:  # a malformed schema fails before any file is written
        SchemaSpace(schema, unary=unary)
    t0 = time.perf_counter()
    study = Study(args.study, task=args.task, baselines=baselines, regressor=args.regressor,
                  random_state=args.random_state, lease_s=args.lease, max_retries=args.max_retries,
                  strategy=args.strategy, create=True)
    try:
        for schema in schemas:
            print(f"adding {len(SchemaSpace(schema, unary=unary)):,} names of {schema} "
                  f"({len(unary)} unary operators) ...", flush=True)
            study.add_schema(schema, unary=unary, progress=not args.no_progress)
        for path in args.names or []:
            print(f"adding the names of {path} ...", flush=True)
            study.add_names_file(path, progress=not args.no_progress)
    except BaseException:
        study.close()
        remove_study_files(args.study)
        raise
    c = study.counts()
    n_finite = study.n_finite()
    print(f"created {args.study} in {time.perf_counter() - t0:.1f} s: {c['names']:,} names in "
          f"{c['classes']:,} classes ({n_finite:,} with finite outputs); task "
          f"{study.settings['task'] or '-'}")
    if next_step:
        print(f"next: aquasurf featurize {args.study}")
    return 0


# -- featurize and search --------------------------------------------------------------------------

def cmd_featurize(args) -> int:
    study = open_study(args.study)
    device = checked_device(args) or "auto"
    t0 = time.perf_counter()
    with data_dir_env(args):
        done = study.featurize(pool=args.pool, chunk=args.chunk, device=device,
                               progress=not args.no_progress,
                               executor=executor_from_args(args, None, in_process=True))
    c = study.counts()
    print(f"featurized {done['fisher']:,} classes in {time.perf_counter() - t0:.1f} s; the Fisher "
          f"pool holds {c['pool']:,} of {c['classes']:,} classes, {c['candidates']:,} of them "
          "surrogate candidates")
    if done["failed"]:
        print(f"{done['failed']:,} Fisher features failed; most common reasons:")
        for reason, count in done["reasons"]:
            print(f"  {count:,} x {reason[:200]}")
    return 0


def cmd_search(args) -> int:
    options = training_options(args)  # a GPU that is not there: refused before anything else
    study = open_study(args.study)
    evaluate = None
    if study.settings.get("task"):
        # Another recipe than the study's results': refused before any setting changes.
        evaluate = study.task_evaluator(**options)
    if args.strategy:
        study.update_settings(strategy=args.strategy)
    if study.has_fisher() is False and study.settings.get("task"):
        failed = study.fisher_failure_reasons(1)
        if failed:
            raise UsageError(f"{args.study} has no valid Fisher features: every one computed failed "
                             f"(most often, {failed[0][1]:,} times: {failed[0][0]}); fix the task, "
                             f"then run `aquasurf featurize {args.study}` again")
        raise UsageError(f"{args.study} has no Fisher features yet: run "
                         f"`aquasurf featurize {args.study}` first")
    t0 = time.perf_counter()
    try:
        with data_dir_env(args):
            stats = study.run(evaluate, budget=args.budget, timeout=args.timeout,
                              progress=not args.no_progress, grow=args.grow,
                              executor=executor_from_args(args, args.workers, args.timeout),
                              grow_every=args.grow_every, device=options["device"])
    except KeyboardInterrupt:
        print("\ninterrupted: running claims given back; run the same command to resume",
              file=sys.stderr)
        return 130
    grown = f"; the Fisher pool grew by {stats['grown']}" if stats["grown"] else ""
    print(f"{stats['evaluated']} evaluations in {time.perf_counter() - t0:.1f} s "
          f"({stats['failed_attempts']} failed attempts); {stats['done']} results in the study"
          + grown)
    _print_top(study, args.top)
    return 0


# -- inspecting ------------------------------------------------------------------------------------

def _reference(study, name: str = "relu"):
    for r in study.results(members=False):
        if (name in r["members"] or f"{name}(x)" in r["members"]) and r["status"] == "done":
            return r
    return None


def _print_top(study, k: int) -> None:
    rows = study.top(k)
    if not rows:
        print("no results yet")
        return
    ref = _reference(study)
    width = max(len(r["name"]) for r in rows + ([ref] if ref else []))
    width = min(max(width, 8), 60)
    print(f"{'rank':>4}  {'function':<{width}}  {'val_acc':>7}  {'test_acc':>8}  {'runtime':>7}")
    for i, r in enumerate(rows, 1):
        m = r["metrics"]
        print(f"{i:>4}  {r['name'][:width]:<{width}}  {_fmt(r['score']):>7}  "
              f"{_fmt(m.get('test_acc')):>8}  {_seconds(r['runtime']):>7}")
    if ref is not None:
        m = ref["metrics"]
        print(f"{'ref':>4}  {ref['name'][:width]:<{width}}  {_fmt(ref['score']):>7}  "
              f"{_fmt(m.get('test_acc')):>8}  {_seconds(ref['runtime']):>7}")


def _pool_lines(study) -> List[str]:
    """The status lines about the Fisher pool, its growth and the embeddings."""
    progress = study.pool_progress()
    n, ok, bad, todo = (progress[k] for k in ("pool", "valid", "failed", "todo"))
    if not n:
        return [f"pool      none yet: run `aquasurf featurize {study.path}`"]
    lines = [f"pool      {n:,} classes featurized: {int(ok):,} with valid Fisher features (the "
             f"candidates), {int(bad):,} whose Fisher features failed, {int(todo):,} to compute"
             + (f" (run `aquasurf featurize {study.path}`)" if todo else "")]
    grown = study.event_details("pool")
    grown = [g for g in grown if g.get("how") == "grow"]
    if grown:
        lines.append(f"growth    {len(grown)} rounds added {sum(g['added'] for g in grown):,} "
                     f"classes near the best results (last near {', '.join(grown[-1]['near'])})")
    embeds = study.event_details("embed")
    if embeds:
        placed = sum(1 for e in embeds if "placed" in e)
        how = f" ({placed} by placing grown candidates in the layouts before)" if placed else ""
        lines.append(f"embedding computed {len(embeds)} times{how}, "
                     f"{_seconds(sum(e['seconds'] for e in embeds))} in all (last: "
                     f"{embeds[-1]['candidates']:,} candidates in {_seconds(embeds[-1]['seconds'])})")
    return lines


def cmd_status(args) -> int:
    study = open_study(args.study)
    c = study.counts()
    meta = study.settings
    print(f"study     {args.study}")
    print(f"task      {meta.get('task') or '-'}   strategy {meta.get('strategy', DEFAULT_STRATEGY)}   "
          f"regressor {meta['regressor']}   lease {meta['lease_s']:g} s   "
          f"retries {meta['max_retries']}")
    print(f"space     {c['names']:,} names, {c['classes']:,} classes, {c['candidates']:,} candidates")
    for description in study.space_descriptions():
        print(f"          {description}")
    for line in _pool_lines(study):
        print(line)
    feature_set = study.event_details("feature_set")[-1:]
    if feature_set:  # the features the surrogate embedded the candidates by, last time
        fisher = feature_set[0]["features"] == "fisher"
        print("features  " + ("Fisher and output features" if fisher else
                              "output features alone: no class has valid Fisher features"))
    print(f"status    {c['done']} done, {c['running']} running, {c['pending']:,} pending, "
          f"{c['failed']} failed")
    best = study.best()
    ref = _reference(study)
    if best:
        print(f"best      {best['name']}  val_acc {_fmt(best['score'])}  "
              f"test_acc {_fmt(best['metrics'].get('test_acc'))}")
    if ref:
        print(f"relu      val_acc {_fmt(ref['score'])}  test_acc {_fmt(ref['metrics'].get('test_acc'))}")
    now = time.time()
    results = study.results(members=False)
    running = [r for r in results if r["status"] == "running"]
    if running:
        print("running")
        for r in running:
            print(f"  {r['name']}  by {r['claim_owner']}  for {_age(now - (r['claimed_at'] or now))}")
    failed = [r for r in results if r["error"]]
    if failed:
        print("errors")
        for r in failed[-5:]:
            last = (r["error"] or "").strip().splitlines()[-1:] or [""]
            print(f"  {r['name']} ({r['status']}, {r['attempts']} attempts): {last[0][:120]}")
    return 0


def cmd_top(args) -> int:
    _print_top(open_study(args.study), args.k)
    return 0


def cmd_export(args) -> int:
    study = open_study(args.study)
    if not args.csv and not args.json:
        raise UsageError("nothing to export: give --csv FILE and/or --json FILE")
    n_rows = 0
    if args.csv:
        import csv

        # Streamed in class order: --all on a space of millions of classes stays in bounded memory.
        rows = (study.iter_results(include_pending=True) if args.all
                else iter(study.results()))
        done = study.results(members=False)
        keys = sorted({k for r in done for k in r["metrics"]})
        with open(args.csv, "w", newline="", encoding="utf-8") as f:
            w = csv.writer(f)
            w.writerow(["name", "status", "score", *keys, "runtime", "attempts", "eval_index",
                        "baseline", "n_members", "members", "error"])
            for r in rows:
                w.writerow([r["name"], r["status"], "" if not math.isfinite(r["score"]) else r["score"],
                            *[r["metrics"].get(k, "") for k in keys], r["runtime"] or "",
                            r["attempts"], r["eval_index"] or "", int(r["baseline"]), r["n_members"],
                            " ".join(r["members"]),
                            (r["error"] or "").strip().splitlines()[-1] if r["error"] else ""])
                n_rows += 1
    if args.json:
        from ..bench.build import write_benchmark

        n_rows = max(n_rows, write_benchmark(study, args.json))
    print(f"exported {n_rows:,} classes" + (f" to {args.csv}" if args.csv else "")
          + (f" and {args.json}" if args.csv and args.json else f" to {args.json}" if args.json else ""))
    return 0


def cmd_members(args) -> int:
    study = open_study(args.study)
    names = study.members(args.name)
    if not args.count:
        for name in names[:args.limit] if args.limit else names:
            print(name)
    if args.count or (args.limit and len(names) > args.limit):
        sys.stdout.flush()  # the names first, then the count (on stderr when names were listed)
        print(f"# {len(names):,} names in the class of {args.name} ({study.class_of(args.name)})",
              file=sys.stderr if not args.count else sys.stdout)
    return 0


def cmd_plot(args) -> int:
    from ..study.plots import new_figure, plot_study

    new_figure()  # matplotlib missing: say so before fitting the surrogate
    study = open_study(args.study)
    os.makedirs(args.out, exist_ok=True)
    prediction_map = study.prediction_map()  # a new embedding is computed and logged here
    for path in plot_study(study, args.out, prediction_map):
        print(path)
    return 0


# -- space -----------------------------------------------------------------------------------------

def cmd_space(args) -> int:
    from ..expr import SchemaSpace
    from ..features import schema_classes
    from ..kernels import num_threads

    unary = unary_ops(args.unary)
    space = SchemaSpace(args.schema, unary=unary)
    print(f"featurizing {len(space):,} names of {args.schema} ({len(unary)} unary operators) "
          f"on {num_threads()} threads ...", flush=True)
    result = schema_classes(args.schema, unary=unary)
    n_nonfinite = int((~result.finite).sum())
    print(f"names                 {result.n_names:>12,}")
    print(f"classes               {result.n_classes:>12,}")
    print(f"  finite outputs      {result.n_classes - n_nonfinite:>12,}  (surrogate candidates)")
    print(f"  NaN or inf outputs  {n_nonfinite:>12,}")
    print(f"time                  {result.seconds:>11.2f}s")
    import numpy as np

    sizes = np.bincount(result.class_of)
    if args.show > 0:
        print("largest classes:")
        for c in np.argsort(-sizes, kind="stable")[:args.show]:
            print(f"  {int(sizes[c]):>6,} names  e.g. {result.space[int(result.representatives[c])]}")
    return 0


# -- quickstart ------------------------------------------------------------------------------------

def cmd_quickstart(args) -> int:
    device = checked_device(args)  # a GPU that is not there: refused before the study is made
    if not os.path.exists(args.study):
        init = argparse.Namespace(study=args.study, task=args.task, schema=None, names=None,
                                  unary="benchmark", baselines=None, regressor="knn",
                                  random_state=None, lease=None, max_retries=None, force=False,
                                  strategy=args.strategy, no_progress=args.no_progress)
        cmd_init(init, next_step=False)
    study = open_study(args.study)
    with data_dir_env(args):
        study.featurize(progress=not args.no_progress, device=device or "auto")
    ns = argparse.Namespace(study=args.study, budget=args.budget, workers=args.workers,
                            timeout=None, no_progress=args.no_progress, top=args.top,
                            executor="local", address=None, gpus=None, grow=DEFAULT_GROW,
                            grow_every=DEFAULT_GROW_EVERY, strategy=args.strategy, device=device,
                            epochs=args.epochs, amp=args.amp, data_dir=args.data_dir)
    return cmd_search(ns)


# -- the parser ------------------------------------------------------------------------------------

def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="aquasurf",
        description="Search for activation functions with the AQuaSurF surrogate. A study is one "
                    "SQLite file; the study commands take its path first.",
        epilog="Typical use: aquasurf init s.db --task mnist1d; aquasurf featurize s.db; "
               "aquasurf search s.db --budget 50 --workers 2; aquasurf top s.db; aquasurf plot s.db")
    p.add_argument("--debug", action="store_true",
                   help="on an error, print its full traceback, not only its message (also "
                        "AQUASURF_DEBUG=1)")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for add_command in (_add_init, _add_featurize, _add_search, _add_status, _add_top, _add_plot,
                        _add_export, _add_members, _add_space, _add_quickstart, add_bench_parsers,
                        add_info_parser):
        add_command(sub)
    add_dashboard_parsers(sub, _study_command)
    return p


def _study_command(sub, name: str, help_: str, fn) -> argparse.ArgumentParser:
    """A subcommand whose first argument is the study file."""
    sp = sub.add_parser(name, help=help_, description=help_)
    sp.add_argument("study", help="the study file (SQLite)")
    sp.set_defaults(fn=fn)
    return sp


def _add_init(sub) -> None:
    sp = _study_command(sub, "init", "create a study for a task and a search space", cmd_init)
    sp.add_argument("--task", help="mnist1d, digits, cifar100-allcnnc, cifar10-resnet20, "
                                   "cifar10-vit, a .py file or a module exposing build, "
                                   "fisher_batch and train_eval")
    sp.add_argument("--schema", action="append",
                    help=f"a schema to enumerate (repeatable; default {BENCHMARK_SCHEMA} when no "
                         "--names is given)")
    sp.add_argument("--names", action="append", metavar="FILE",
                    help="a file of function names, one per line (repeatable; # comments)")
    add_unary_option(sp)
    sp.add_argument("--baselines", help="comma-separated functions evaluated first (default: "
                                        "elu,relu,selu,sigmoid,softplus,softsign,swish,tanh)")
    sp.add_argument("--regressor", default="knn", choices=REGRESSOR_NAMES,
                    help="surrogate regressor (default knn: 3 nearest neighbours, weighted by "
                         "inverse distance in the ensemble strategy)")
    add_strategy_option(sp)
    sp.add_argument("--random-state", type=int, help="surrogate seed (default 42)")
    sp.add_argument("--lease", type=float, help="claim lease in seconds (default 600)")
    sp.add_argument("--max-retries", type=int, help="retries of a failing evaluation (default 2)")
    sp.add_argument("--force", action="store_true", help="replace an existing file")
    add_no_progress(sp)


def _add_featurize(sub) -> None:
    sp = _study_command(sub, "featurize", "choose the Fisher pool and compute its features (resumable)",
                        cmd_featurize)
    sp.add_argument("--pool", type=int,
                    help="classes besides the baselines that get Fisher features, chosen to cover "
                         "the output-feature space (default: all when at most 10,000 have finite "
                         "outputs, else 5,000); a larger pool later adds to it")
    sp.add_argument("--chunk", type=int, default=128, help="classes per committed chunk")
    add_device_option(sp, "the Fisher pass", "default auto")
    sp.add_argument("--data-dir", metavar="DIR",
                    help="folder of the datasets of the CIFAR tasks (default $AQUASURF_DATA, else "
                         "$AQUASURF_CACHE/datasets)")
    add_no_progress(sp)
    add_executor_options(sp, "featurization", workers=False)


def _add_search(sub) -> None:
    sp = _study_command(sub, "search", "train suggested candidates until the study holds BUDGET results",
                        cmd_search)
    sp.add_argument("--budget", type=int, default=50,
                    help="total results to reach, baselines included (default 50)")
    sp.add_argument("--timeout", type=float, help="kill an evaluation after this many seconds")
    sp.add_argument("--grow", type=int, default=DEFAULT_GROW,
                    help="classes added to the Fisher pool near the best results after each round "
                         f"of results (default {DEFAULT_GROW}; 0 turns growth off)")
    sp.add_argument("--grow-every", type=int, default=DEFAULT_GROW_EVERY,
                    help=f"results per round (default {DEFAULT_GROW_EVERY})")
    sp.add_argument("--top", type=int, default=5, help="best functions to print at the end")
    add_strategy_option(sp)
    add_device_option(sp, "training", "default: the task's own, auto for the CIFAR tasks, cpu "
                                      "for mnist1d and digits")
    add_training_options(sp)
    add_no_progress(sp)
    add_executor_options(sp, "training")


def _add_status(sub) -> None:
    _study_command(sub, "status", "counts, best so far, running claims and their age, recent errors",
                   cmd_status)


def _add_top(sub) -> None:
    sp = _study_command(sub, "top", "the best evaluated functions", cmd_top)
    sp.add_argument("-k", type=int, default=10, help="how many (default 10)")


def _add_plot(sub) -> None:
    sp = _study_command(sub, "plot", "PNG plots: embedding by observed and predicted score, best so far",
                        cmd_plot)
    sp.add_argument("--out", default=".", help="directory for the PNGs (default: here)")


def _add_export(sub) -> None:
    sp = _study_command(sub, "export", "write results as CSV and/or JSON (Act-Bench layout, every "
                        "class; untrained ones with null metrics)", cmd_export)
    sp.add_argument("--csv", help="CSV file to write")
    sp.add_argument("--json", help="JSON file to write")
    sp.add_argument("--all", action="store_true",
                    help="every class in the CSV, unevaluated ones too (streamed)")


def _add_members(sub) -> None:
    sp = _study_command(sub, "members", "every name of the class holding NAME", cmd_members)
    sp.add_argument("name", help="any name of the study's space")
    sp.add_argument("--limit", type=int, default=0, help="print at most this many names")
    sp.add_argument("--count", action="store_true", help="print only how many names the class has")


def _add_space(sub) -> None:
    sp = sub.add_parser("space", help="featurize a search space and summarize its equivalence classes",
                        description="Featurize every name of a schema on the probe inputs and count its "
                                    "equivalence classes, without building the names.")
    sp.add_argument("schema", nargs="?", default=BENCHMARK_SCHEMA, help=f"default {BENCHMARK_SCHEMA}")
    add_unary_option(sp)
    sp.add_argument("--show", type=int, default=5, help="largest classes to list (default 5)")
    sp.set_defaults(fn=cmd_space)


def _add_quickstart(sub) -> None:
    sp = _study_command(sub, "quickstart", "init (if needed), featurize and search in one go", cmd_quickstart)
    sp.add_argument("--task", default="mnist1d",
                    help="mnist1d (the default), digits, cifar100-allcnnc, cifar10-resnet20, "
                         "cifar10-vit, or a task file or module")
    sp.add_argument("--budget", type=int, default=30, help="total results (default 30)")
    sp.add_argument("--workers", type=int, default=max(1, (os.cpu_count() or 1)),
                    help="worker processes (default: number of CPUs)")
    sp.add_argument("--top", type=int, default=5, help="best functions to print at the end")
    add_strategy_option(sp)
    add_device_option(sp, "the Fisher pass and training", "default: auto for the Fisher pass; "
                      "for training the task's own, auto for the CIFAR tasks, cpu for mnist1d "
                      "and digits")
    add_training_options(sp)
    add_no_progress(sp)


def main(argv: Optional[Sequence[str]] = None) -> int:
    from ..study.store import StudyError

    args = build_parser().parse_args(argv)
    try:
        return args.fn(args)
    except (UsageError, StudyError, ValueError, ImportError, OSError) as exc:
        if args.debug or os.environ.get("AQUASURF_DEBUG", "") not in ("", "0"):
            # Where the error came from, for a bug report; the message below still ends it.
            traceback.print_exc(file=sys.stderr)
        msg = str(exc).strip() or type(exc).__name__
        # Multi-line messages (an evaluation's traceback) keep their lines; the rest is one line.
        print(f"aquasurf {args.command}: error: {msg}", file=sys.stderr)
        return 2 if isinstance(exc, UsageError) else 1
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
        return 130

