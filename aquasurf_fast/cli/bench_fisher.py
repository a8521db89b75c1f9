"""``aquasurf bench fisher``: how fast the Fisher-spectrum features of a task's network are on
this machine (``bench.fisher_speed.benchmark_fisher``), as a table and optionally as JSON."""
from __future__ import annotations

from typing import List

from .common import UsageError, add_device_option, checked_device, data_dir_env, int_at_least


def read_functions(path: str) -> List[str]:
    """Function names from a file, one a line; blank lines and ``#`` comments are skipped. Each
    is parsed, so that a typo is one error naming its line before any work."""
    from ..expr import ParseError, parse

    try:
        with open(path) as f:
            lines = f.read().splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"cannot read the functions file {path}: {exc}") from None
    names = []
    for number, line in enumerate(lines, 1):
        text = line.split("#", 1)[0].strip()
        if not text:
            continue
        try:
            names.append(str(parse(text)))
        except (ParseError, ValueError) as exc:
            raise UsageError(f"{path}:{number}: {exc}") from None
    if not names:
        raise UsageError(f"the functions file {path} names no function")
    return names


def baselines(text: str) -> List[str]:
    """--against: comma-separated baselines, or "none"."""
    from ..bench.fisher_pipelines import BASELINES

    chosen = [b.strip() for b in text.split(",") if b.strip() and b.strip() != "none"]
    unknown = [b for b in chosen if b not in BASELINES]
    if unknown:
        raise UsageError(f"--against: unknown baseline {unknown[0]!r}: use "
                         f"{', '.join(BASELINES)} or none")
    return chosen


def cmd_bench_fisher(args) -> int:
    from ..bench.fisher_speed import benchmark_fisher
    from ..tasks import load_task

    device = checked_device(args) or "auto"
    against = baselines(args.against)
    functions = read_functions(args.functions) if args.functions else None
    task = load_task(args.task)
    with data_dir_env(args):
        inputs, targets = task.fisher_batch()
    sizes = args.batch or [int(inputs.shape[0])]
    what = (f"{len(functions)} functions of {args.functions}" if functions
            else f"{args.candidates} candidates drawn from the benchmark space")
    print(f"task {args.task}: {what}, batch {', '.join(map(str, sizes))}, device {device}; "
          f"checking the spectrum, then timing ...", flush=True)
    result = benchmark_fisher(task.build, inputs, targets, functions=functions,
                              candidates=args.candidates, batch_sizes=sizes, repeats=args.repeats,
                              device=device, against=against, description=f"task {args.task}")
    print(result.table())
    if args.json:
        result.write_json(args.json)
        print(f"wrote {args.json}")
    return 0


def add_bench_fisher_parser(bsub) -> None:
    sp = bsub.add_parser(
        "fisher", help="how fast the Fisher-spectrum features of a task's network are here",
        description="Check that the package's Fisher spectra equal the plain float64 pipeline's "
                    "on the task's network, then time the Fisher features per candidate "
                    "activation (median, breakdown, peak memory), one at a time against batched, "
                    "against the plain PyTorch pipeline and curvlinops, and against the floor "
                    "(the network's multiply-adds at this machine's matmul rate).")
    sp.add_argument("--task", default="mnist1d",
                    help="a built-in task, a task file or a module (default mnist1d)")
    add_device_option(sp, "the benchmark", "default auto")
    sp.add_argument("--batch", type=int_at_least(1), nargs="+", metavar="N",
                    help="batch size(s): the first N samples of the task's Fisher batch, repeated "
                         "when N is larger (default: the Fisher batch)")
    names = sp.add_mutually_exclusive_group()
    names.add_argument("--candidates", type=int_at_least(1), default=3,
                       help="functions drawn at random from the benchmark space (default 3)")
    names.add_argument("--functions", metavar="NAMES_FILE",
                       help="a file of function names, one a line, instead of drawn candidates")
    sp.add_argument("--repeats", type=int_at_least(1), default=3,
                    help="timed runs per measurement, after a warm-up; medians (default 3)")
    sp.add_argument("--against", default="plain,curvlinops",
                    help="baselines, comma-separated: plain, curvlinops, or none "
                         "(default plain,curvlinops)")
    sp.add_argument("--json", metavar="OUT", help="also write every figure, with the machine's "
                                                 "description, to this JSON file")
    sp.add_argument("--data-dir", metavar="DIR",
                    help="folder of the datasets of the CIFAR tasks (default $AQUASURF_DATA, else "
                         "$AQUASURF_CACHE/datasets)")
    sp.set_defaults(fn=cmd_bench_fisher)
