"""``aquasurf bench``: build a benchmark (every class trained), summarize one, replay searches on one."""
from __future__ import annotations

import sys
import time

from ..expr import BENCHMARK_SCHEMA
from .bench_fisher import add_bench_fisher_parser
from .bench_suite import add_bench_suite_parser
from .common import (UsageError, add_device_option, add_executor_options, add_no_progress,
                     add_training_options, add_unary_option, data_dir_env, executor_from_args,
                     int_at_least, training_options, unary_ops)


def cmd_bench_build(args) -> int:
    from ..expr import enumerate_schema
    from ..bench.build import build_benchmark, default_study_path
    from ..bench.format import describe, load_benchmark

    space = BENCHMARK_SCHEMA if args.space == "benchmark" else args.space
    names = enumerate_schema(space, unary=unary_ops(args.unary))
    study_path = args.study or default_study_path(args.out, args.seeds)
    print(f"building {args.out}: {len(names)} names of {space}, task {args.task}, "
          f"{args.seeds} seed(s), executor {args.executor}; progress is kept in {study_path}",
          flush=True)
    options = training_options(args)
    t0 = time.perf_counter()
    try:
        with data_dir_env(args):
            stats = build_benchmark(args.out, args.task, names=names, seeds=args.seeds,
                                    study_path=study_path, progress=not args.no_progress,
                                    executor=executor_from_args(args, args.workers),
                                    device=options["device"] or "auto", options=options)
    except KeyboardInterrupt:
        print(f"\ninterrupted: run the same command to resume from {study_path}", file=sys.stderr)
        return 130
    print(f"{stats['evaluated']} trainings in {time.perf_counter() - t0:.1f} s")
    print(describe(load_benchmark(args.out, cache=False)))
    return 0


def cmd_bench_info(args) -> int:
    from ..bench.format import describe, load_benchmark

    print(describe(load_benchmark(args.file)))
    return 0


def cmd_bench_replay(args) -> int:
    from ..bench.format import describe, load_benchmark
    from ..bench.replay import STRATEGIES, replay
    from ..surrogate.strategy import parse_variant

    strategies = [s.strip() for s in args.strategies.split(",") if s.strip()]
    try:
        unknown = [s for s in strategies if parse_variant(s)[0] not in STRATEGIES]
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    if unknown:
        raise UsageError(f"unknown strategy {', '.join(unknown)}: use {', '.join(STRATEGIES)}")
    bench = load_benchmark(args.file)
    print(describe(bench), flush=True)
    result = replay(bench, strategies, trials=args.trials, budget=args.budget, seed=args.seed,
                    n_embeddings=args.embeddings, progress=not args.no_progress,
                    pool_size=args.pool, workers=args.parallel, score=args.score)
    pool = result.pool
    seeds = f"median over {bench.n_seeds} seeds" if bench.n_seeds > 1 else "one seed"
    print(f"{len(pool)} candidates; top-1% = {pool.n_top('top-1%')} classes "
          f"(validation accuracy >= {pool.top_threshold('top-1%'):.4f}); {args.trials} trials of "
          f"{result.budget} evaluations, {args.parallel} suggestion(s) out at a time; medians over "
          f"trials, share of trials that got there in parentheses, 95% bootstrap intervals of the "
          f"medians in brackets; regret in test accuracy ({seeds}); pool strategies start from "
          f"{args.pool} featurized classes and the baselines")
    print(result.table())
    for path in result.plot(args.out):
        print(f"wrote {path}")
    return 0


def add_bench_parsers(sub) -> None:
    from ..bench.replay_pool import SCORES
    from ..bench.replay import N_EMBEDDINGS, REPLAY_ORDER
    from ..surrogate.strategy import N_LAYOUTS

    bench = sub.add_parser("bench", help="build a benchmark (every class trained) or replay searches "
                                         "on one", description="Benchmarks in the Act-Bench layout.")
    bsub = bench.add_subparsers(dest="bench_command", metavar="BENCH_COMMAND")
    bsub.required = True
    sp = bsub.add_parser("build", help="train every finite class of a space; resumable",
                         description="Train every class of a space whose outputs are finite and "
                                     "write the Act-Bench JSON layout. Interrupt it any time: the "
                                     "same command resumes from its study file.")
    sp.add_argument("--task", default="mnist1d", help="task (default mnist1d)")
    sp.add_argument("--space", default="benchmark",
                    help=f"benchmark ({BENCHMARK_SCHEMA}, 5,103 names) or another schema")
    add_unary_option(sp)
    sp.add_argument("--seeds", type=int_at_least(1), default=1,
                    help="trainings per class under seeds 0..S-1; the median run is kept (default 1)")
    sp.add_argument("--out", required=True, help="the JSON file to write (.json or .json.gz)")
    sp.add_argument("--study", help="the study file that holds the progress (default: next to "
                                    "--out, NAME.study.db)")
    add_device_option(sp, "the Fisher pass and training", "default: auto for the Fisher pass; "
                      "for training the task's own, auto for the CIFAR tasks, cpu for mnist1d "
                      "and digits")
    add_training_options(sp)
    add_no_progress(sp)
    add_executor_options(sp, "featurization and training")
    sp.set_defaults(fn=cmd_bench_build)

    sp = bsub.add_parser("info", help="summary of a benchmark: accuracies, baselines' ranks",
                         description="How many classes were trained, the spread of their "
                                     "accuracies, and where the baselines rank.")
    sp.add_argument("file", help="a benchmark in the Act-Bench JSON layout (.json or .json.gz)")
    sp.set_defaults(fn=cmd_bench_info)

    sp = bsub.add_parser("replay", help="replay searches on a benchmark, no training",
                         description="Replay searches with looked-up scores: validation accuracy "
                                     "chooses, test accuracy is reported.")
    sp.add_argument("file", help="a benchmark in the Act-Bench JSON layout (.json or .json.gz)")
    sp.add_argument("--strategies", default=",".join(REPLAY_ORDER),
                    help=f"comma-separated, from {', '.join(REPLAY_ORDER)} (default: all)")
    sp.add_argument("--trials", type=int, default=50, help="searches per strategy (default 50)")
    sp.add_argument("--budget", type=int, default=100, help="evaluations per search (default 100)")
    sp.add_argument("--pool", type=int_at_least(0), default=100,
                    help="featurized classes the pool strategies start from, besides the baselines "
                         "(default 100)")
    sp.add_argument("--seed", type=int, default=0, help="seed of the trials (default 0)")
    sp.add_argument("--embeddings", type=int, default=N_EMBEDDINGS,
                    help=f"UMAP layout seeds per feature set that the trials draw from (default "
                         f"{N_EMBEDDINGS}; at least {N_LAYOUTS} for the ensemble and the hybrid; "
                         "each is cached)")
    sp.add_argument("--parallel", type=int, default=1, metavar="W",
                    help="suggestions out at a time: each is made while the W-1 before it still "
                         "train, as search --workers W does (default 1)")
    sp.add_argument("--out", default=".", help="directory for replay.png (default: here)")
    sp.add_argument("--score", choices=SCORES, default="median",
                    help="what a search sees of a class trained under several seeds: its median "
                         "run (default) or the mean of its runs")
    add_no_progress(sp)
    sp.set_defaults(fn=cmd_bench_replay)
    add_bench_fisher_parser(bsub)
    add_bench_suite_parser(bsub)
