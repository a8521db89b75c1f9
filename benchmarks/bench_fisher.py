"""Fisher-spectrum features per candidate: aquasurf_fast vs the plain-torch pipeline vs curvlinops,
on fixed cases (fisher_models.CASES: All-CNN-C with CIFAR-100 shapes at batch 32 and 128, a
784-512-512-10 MLP at batch 128, a small ViT on 3x32x32 images at batch 32 and 128) with
synthetic inputs of their datasets' shapes.

Every figure comes from the package's own benchmark, ``aquasurf_fast.benchmark_fisher`` (the
command ``aquasurf bench fisher`` runs it on a task): it first checks the package's spectrum
against the plain float64 pipeline, then reports per candidate the median with its breakdown,
the peak memory, the plain pipeline, curvlinops (when installed) and the floor, and the
throughput of fisher_features_for one at a time and batched.

    python benchmarks/bench_fisher.py [--cases all-cnn-c] [--batch 32] [--candidates 3]
        [--repeats 3] [--device cpu] [--against plain,curvlinops] [--json OUT]
"""
import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import aquasurf_fast as aq  # noqa: E402
from fisher_models import CASES  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cases", nargs="+", help="only the cases whose name contains one of these words (e.g. vit)")
    ap.add_argument("--batch", type=int, nargs="+", help="batch sizes (default: each case's own)")
    ap.add_argument("--candidates", type=int, default=3, help="functions drawn from the benchmark space")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--against", default="plain,curvlinops", help="baselines, comma-separated")
    ap.add_argument("--json", help="write every case's figures to this file")
    args = ap.parse_args()
    cases = [c for c in CASES if not args.cases or any(w.lower() in c.name.lower() for w in args.cases)]
    figures = []
    for case in cases:
        sizes = args.batch or list(case.batches)
        inputs, targets = case.batch(max(sizes))
        result = aq.benchmark_fisher(case.build, inputs, targets, candidates=args.candidates,
                                     batch_sizes=sizes, repeats=args.repeats, device=args.device,
                                     against=[a for a in args.against.split(",") if a],
                                     description=case.name)
        print(result.table(), end="\n\n", flush=True)
        figures.append(result.to_dict())
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=1) + "\n")


if __name__ == "__main__":
    main()
