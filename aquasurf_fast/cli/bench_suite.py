"""``aquasurf bench suite``: replay every shipped benchmark (or the files named) with W = 1 and
W = 4, print each table with random search's exact row, the worst-case summary and the default
rule's decision."""
from __future__ import annotations

from .common import UsageError, add_no_progress, int_at_least

SUITE_STRATEGIES = "adaptive,hybrid,ensemble,paper"


def cmd_bench_suite(args) -> int:
    from ..bench.default_rule import REFERENCE, choose_default
    from ..bench.replay import STRATEGIES
    from ..bench.suite import replay_suite, suite_files
    from ..surrogate.strategy import parse_variant

    strategies = [s.strip() for s in args.strategies.split(",") if s.strip()]
    try:
        families = {}
        for s in strategies:
            families.setdefault(parse_variant(s)[0], []).append(s)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    unknown = [f for f in families if f not in STRATEGIES]
    if unknown:
        raise UsageError(f"unknown strategy {', '.join(unknown)}: use {', '.join(STRATEGIES)}")
    files = suite_files(args.files)
    longer = (f", then {args.long_trials} of {args.long_budget} with W = 1"
              if args.long_budget and args.long_trials else "")
    print(f"replaying {len(files)} benchmark(s): {', '.join(files)}; {args.trials} trials of "
          f"{args.budget} evaluations with W = 1 and 4{longer}; classes ranked by the "
          f"{args.score} validation accuracy over their seeds", flush=True)
    result = replay_suite(files, strategies, trials=args.trials, budget=args.budget,
                          long_budget=args.long_budget, long_trials=args.long_trials,
                          seed=args.seed, progress=not args.no_progress,
                          n_embeddings=args.embeddings, score=args.score, save=args.save)
    print(result.tables())
    print("\n" + result.ratio_table())
    if result.long:
        print("\n" + result.long_table())
    if REFERENCE in families and len(result.benchmarks) > 1:
        decision = choose_default(result.outcomes(), families)
        verdict = decision.default or ("none (no eligible strategy reached a top-1% class within "
                                       "the budget everywhere: raise --budget)")
        print("\nleave one benchmark out (each family tuned on the others, judged on the one left "
              "out):\n" + decision.table() + f"\n\ndefault by the rule: {verdict}")
    return 0


def add_bench_suite_parser(bsub) -> None:
    from ..bench.replay_pool import SCORES
    from ..bench.replay import N_EMBEDDINGS
    from ..surrogate.strategy import N_LAYOUTS

    sp = bsub.add_parser("suite", help="replay every shipped benchmark with 1 and 4 workers; "
                                       "worst-case summary and the default rule",
                         description="Replay searches on every benchmark (default: "
                                     "benchmarks/data/act-bench-*.json.gz under the current "
                                     "directory) with W = 1 and W = 4, random search's figures "
                                     "computed exactly, and choose the default by leaving one "
                                     "benchmark out.")
    sp.add_argument("files", nargs="*", help="benchmark files (default: the shipped ones)")
    sp.add_argument("--strategies", default=SUITE_STRATEGIES,
                    help="comma-separated strategies, adaptive variants as "
                         f"adaptive:spread=0:kappa=1 (default {SUITE_STRATEGIES})")
    sp.add_argument("--trials", type=int_at_least(1), default=50,
                    help="searches per strategy, benchmark and W (default 50)")
    sp.add_argument("--budget", type=int_at_least(1), default=100,
                    help="evaluations per search (default 100)")
    sp.add_argument("--long-budget", type=int_at_least(0), default=400,
                    help="evaluations of the longer replay, W = 1, for the best and top-5 classes "
                         "(default 400; 0 skips it)")
    sp.add_argument("--long-trials", type=int_at_least(0), default=30,
                    help="searches of the longer replay (default 30)")
    sp.add_argument("--seed", type=int, default=0, help="seed of the trials (default 0)")
    sp.add_argument("--embeddings", type=int_at_least(N_LAYOUTS), default=N_EMBEDDINGS,
                    help=f"UMAP layout seeds per benchmark that the trials draw from (default "
                         f"{N_EMBEDDINGS}; each is cached)")
    sp.add_argument("--score", choices=SCORES, default="mean",
                    help="what a search sees of a class trained under several seeds: the mean "
                         "of its runs (default; the median of three ties dozens of classes on a "
                         "small validation set) or its median run")
    sp.add_argument("--save", metavar="DIR",
                    help="keep each strategy's replays in DIR and read back those kept with the "
                         "same settings: an interrupted suite resumes, and processes replaying "
                         "different files can share DIR before one run over all of them")
    add_no_progress(sp)
    sp.set_defaults(fn=cmd_bench_suite)
