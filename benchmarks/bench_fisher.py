"""Fisher-spectrum features per candidate: aquasurf_fast vs the plain-torch pipeline vs curvlinops.

For each case (All-CNN-C with CIFAR-100 shapes at batch 32 and 128, a 784-512-512-10 MLP at batch
128, a small ViT on 3x32x32 images at batch 32 and 128) it first checks our eigenvalues against the
plain pipeline's, then warms up, then reports the median of repeats with a breakdown, the plain
pipeline (forward hooks, unfold + matmul, float64 eigvalsh, numpy histogram of the materialized
pairs), curvlinops' KFAC factors (with the same eigvalsh and histogram after them), and the floor:
the multiply-adds of the forward/backward convolutions and Linear layers and of our covariance
products over this machine's measured float32 matmul rate. Module hooks never see the projections of
nn.MultiheadAttention, so for the ViT the plain pipeline (and the floor) run on its explicit-Linear
twin (fisher_reference.with_linear_attention: the same weights, the same function), and curvlinops
is not run.
Optionally (--candidates N) the throughput of fisher_features_for over N candidate functions.

    python benchmarks/bench_fisher.py [--repeats 3] [--device cpu] [--candidates 50]
    python benchmarks/bench_fisher.py --throughput-only --candidates 50 --throughput-batch 32
"""
import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import aquasurf_fast as aq  # noqa: E402
from aquasurf_fast.fisher import spectrum as fz
from aquasurf_fast.fisher import factors as ff  # noqa: E402
from aquasurf_fast.testing.fisher_reference import with_linear_attention  # noqa: E402
from _timing import sync  # noqa: E402
from fisher_models import ViT, all_cnn_c, mlp  # noqa: E402


# ------------------------------------------------------------------------------------------------
# Baselines
# ------------------------------------------------------------------------------------------------

def plain_factors(model, x, y):
    """Forward hooks + retained output grads + unfold/matmul covariances, as a torch user writes it."""
    caps = []

    def hook(m, args, out):
        out.retain_grad()
        caps.append((m, args[0].detach(), out))

    hs = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, (nn.Linear, nn.Conv2d))]
    model.zero_grad(set_to_none=True)
    F.cross_entropy(model(x), y).backward()
    for h in hs:
        h.remove()
    out = []
    b = x.shape[0]
    for m, inp, o in caps:
        if isinstance(m, nn.Conv2d):
            p = F.unfold(inp, m.kernel_size, dilation=m.dilation, padding=m.padding, stride=m.stride)
            rows = p.transpose(1, 2).reshape(-1, p.shape[1])
            g = o.grad.permute(0, 2, 3, 1).reshape(-1, o.shape[1])
        else:
            rows = inp.reshape(-1, inp.shape[-1])
            g = o.grad.reshape(-1, o.shape[-1])
        if m.bias is not None:
            rows = torch.cat([torch.ones_like(rows[:, :1]), rows], 1)
        out.append((m, (rows.t() @ rows) / b, (g.t() @ g) / g.shape[0]))
    return out


def eig_and_hist(factors):
    feats, eigs = [], []
    for m, a, g in factors:
        # the same zero rule as ours, so that features compare like for like
        ea = fz.numerical_zeros_to_zero(torch.linalg.eigvalsh(a.double()).cpu().numpy())
        eg = fz.numerical_zeros_to_zero(torch.linalg.eigvalsh(g.double()).cpu().numpy())
        eigs.append((ea, eg))
        n = m.weight.numel() + (m.bias.numel() if m.bias is not None else 0)
        if n // 100 < 2:
            continue
        la, lg = np.log(ea[ea > 0]), np.log(eg[eg > 0])
        h, _ = np.histogram(np.add.outer(la, lg).ravel(), np.linspace(-100, 100, n // 100))
        c = np.cumsum(h)
        feats.append((c / c[-1]).astype(np.float32))
    return np.concatenate(feats), eigs


def plain_pipeline(model, x, y, timings):
    t0 = time.perf_counter()
    factors = plain_factors(model, x, y)
    sync(x.device)
    t1 = time.perf_counter()
    feats, eigs = eig_and_hist(factors)
    timings.append({"factors": t1 - t0, "eig+hist": time.perf_counter() - t1})
    return feats, eigs


def curvlinops_pipeline(model, x, y, timings):
    from curvlinops import KFACLinearOperator
    t0 = time.perf_counter()
    op = KFACLinearOperator(model, nn.CrossEntropyLoss(), list(model.parameters()), [(x, y)],
                            fisher_type="empirical", kfac_approx="expand", separate_weight_and_bias=False,
                            check_deterministic=False)
    op.compute_kronecker_factors()
    sync(x.device)
    t1 = time.perf_counter()
    mods = dict(model.named_modules())
    facs = [(mods[n], op._input_covariances[n], op._gradient_covariances[n]) for n in op._input_covariances]
    feats, _ = eig_and_hist(facs)
    timings.append({"factors": t1 - t0, "eig+hist": time.perf_counter() - t1})
    return feats


def ours(model, x, y, timings):
    spec = fz._spectrum(model, x, y)
    t0 = time.perf_counter()
    feats = aq.fisher_features(spec)
    timings.append(dict(spec.timings, histogram=time.perf_counter() - t0))
    return feats, spec


# ------------------------------------------------------------------------------------------------
# Floor
# ------------------------------------------------------------------------------------------------

def matmul_rate(device):
    a = torch.randn(2048, 2048, device=device)
    for _ in range(2):
        a @ a
    sync(device)
    best = float("inf")
    for _ in range(5):
        t = time.perf_counter()
        a @ a
        sync(device)
        best = min(best, time.perf_counter() - t)
    return 2 * 2048 ** 3 / best


def floor_flops(model, x):
    """2 x multiply-adds of forward + input-gradient convolutions/matmuls and of our covariances."""
    flops = []

    def hook(m, args, out):
        inp = args[0]
        b = inp.shape[0]
        if isinstance(m, nn.Conv2d):
            cin = m.in_channels // m.groups
            t = out.shape[2] * out.shape[3]
            macs = b * t * m.out_channels * cin * m.kernel_size[0] * m.kernel_size[1]
            xp, k, s, d, pads = ff._conv_geometry(m, inp)
            dim = int(m.bias is not None) + cin * k[0] * k[1]
            n_rows = b * t
            if s == (1, 1) and k != (1, 1) and ff._cells_cost(inp.shape[1], m.groups, xp.shape[2], xp.shape[3], *k) * b \
                    < 0.8 * ff._im2col_cost(n_rows, dim, m.groups):
                cov = ff._cells_cost(inp.shape[1], m.groups, xp.shape[2], xp.shape[3], *k) * b
            else:
                cov = ff._im2col_cost(n_rows, dim, m.groups)
            cov += ff._im2col_cost(n_rows, m.out_channels // m.groups, m.groups)
        else:
            n_rows = inp.numel() // inp.shape[-1]
            macs = n_rows * m.in_features * m.out_features
            cov = ff._im2col_cost(n_rows, m.in_features + 1, 1) + ff._im2col_cost(n_rows, m.out_features, 1)
        flops.append(2 * (2 * macs + cov))

    hs = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, (nn.Linear, nn.Conv2d))]
    with torch.no_grad():
        model(x)
    for h in hs:
        h.remove()
    return sum(flops)


# ------------------------------------------------------------------------------------------------

def median_of(timings, key=None):
    if key is None:
        return statistics.median(sum(t.values()) for t in timings)
    return statistics.median(t[key] for t in timings)


def run_case(name, build, x, y, repeats, device, rate, with_curvlinops=True, twin=None):
    """``twin(model)``, when given, is the model the plain pipeline, curvlinops and the floor see."""
    torch.manual_seed(42)
    model = build(nn.ReLU()).to(device)
    theirs = twin(model) if twin is not None else model
    x, y = x.to(device), y.to(device)
    # correctness first
    f_ours, spec = ours(model, x, y, [])
    f_plain, eigs = plain_pipeline(theirs, x, y, [])
    assert len(spec.layers) == len(eigs), f"{name}: {len(spec.layers)} layers against the plain pipeline's {len(eigs)}"
    worst = 0.0
    for layer, (ea, eg) in zip(spec.layers, eigs):
        for got, want in ((layer.eig_A.ravel(), ea), (layer.eig_G.ravel(), eg)):
            want = np.sort(want)
            got = np.sort(got)
            # The plain pipeline sums in float32, so only eigenvalues well above its rounding
            # are comparable, to 1e-3 (tests check 1e-6 of the max to 1e-4 against float64 sums).
            big = want > 1e-4 * want.max()
            worst = max(worst, float(np.max(np.abs(got[big] - want[big]) / want[big])))
    assert worst < 1e-3, f"{name}: eigenvalues differ from the plain pipeline by {worst:.2e} relative"
    assert f_ours.shape == f_plain.shape
    feat_diff = float(np.abs(f_ours - f_plain).max())
    # warm-up done above; timed repeats
    t_ours, t_plain, t_curv = [], [], []
    for _ in range(repeats):
        ours(model, x, y, t_ours)
        plain_pipeline(theirs, x, y, t_plain)
        if with_curvlinops:
            curvlinops_pipeline(theirs, x, y, t_curv)
    floor = floor_flops(theirs, x) / rate
    row = {
        "case": name,
        "ours": median_of(t_ours),
        "fwd/bwd": median_of(t_ours, "forward_backward"),
        "cov": median_of(t_ours, "covariances"),
        "eigen": median_of(t_ours, "eigen"),
        "hist": median_of(t_ours, "histogram"),
        "plain": median_of(t_plain),
        "plain eig+hist": median_of(t_plain, "eig+hist"),
        "curvlinops": median_of(t_curv) if t_curv else float("nan"),
        "floor": floor,
        "eig_rel_err": worst,
        "feat_max_diff": feat_diff,
    }
    return row


def throughput(n_candidates, device, batch):
    try:
        from aquasurf_fast.nn import Activation  # noqa: F401
    except ImportError:
        print("fisher_features_for throughput: skipped (aquasurf_fast.Activation is not built)")
        return None
    names = aq.enumerate_schema("binary(unary(x),unary(x))")[:n_candidates]
    torch.manual_seed(0)
    x, y = torch.randn(batch, 3, 32, 32), torch.randint(0, 100, (batch,))
    t = time.perf_counter()
    feats, ok, reasons = aq.fisher_features_for(all_cnn_c, names, x, y, device=device, progress=True)
    dt = time.perf_counter() - t
    print(f"fisher_features_for: {len(names)} candidates, All-CNN-C batch {batch}: {dt:.1f} s "
          f"({dt / len(names):.3f} s per candidate, {int(ok.sum())} valid)")
    return dt


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--candidates", type=int, default=0, help="fisher_features_for throughput over N functions")
    ap.add_argument("--throughput-batch", type=int, default=32)
    ap.add_argument("--no-curvlinops", action="store_true")
    ap.add_argument("--throughput-only", action="store_true", help="skip the per-candidate table")
    ap.add_argument("--cases", nargs="+", help="only the cases whose name contains one of these words (e.g. vit)")
    args = ap.parse_args()
    if args.throughput_only:
        throughput(args.candidates or 50, args.device, args.throughput_batch)
        return
    rate = matmul_rate(args.device)
    print(f"device {args.device}, torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"float32 matmul rate {rate / 1e9:.0f} GFLOP/s")
    torch.manual_seed(0)
    # (name, builder, inputs, targets, the model of the baselines)
    cases = [
        ("All-CNN-C b32", all_cnn_c, torch.randn(32, 3, 32, 32), torch.randint(0, 100, (32,)), None),
        ("All-CNN-C b128", all_cnn_c, torch.randn(128, 3, 32, 32), torch.randint(0, 100, (128,)), None),
        ("MLP 784-512-512-10 b128", mlp, torch.randn(128, 1, 28, 28), torch.randint(0, 10, (128,)), None),
        ("ViT 4x128 b32", ViT, torch.randn(32, 3, 32, 32), torch.randint(0, 100, (32,)), with_linear_attention),
        ("ViT 4x128 b128", ViT, torch.randn(128, 3, 32, 32), torch.randint(0, 100, (128,)), with_linear_attention),
    ]
    if args.cases:
        cases = [c for c in cases if any(word.lower() in c[0].lower() for word in args.cases)]
    # The ViT rows leave curvlinops out: how it treats parameters outside Linear and Conv2d layers
    # (LayerNorm, the class token) is unverified, and the ViT's baseline is the plain pipeline.
    rows = [run_case(n, b, x, y, args.repeats, args.device, rate, not args.no_curvlinops and twin is None, twin)
            for n, b, x, y, twin in cases]
    cols = ["case", "ours", "fwd/bwd", "cov", "eigen", "hist", "plain", "curvlinops", "floor"]
    print()
    print("| " + " | ".join(cols) + " | plain/ours | curvlinops/ours | ours/floor |")
    print("|" + "---|" * (len(cols) + 3))
    for r in rows:
        cells = [r["case"]] + [f"{r[c]:.3f} s" for c in cols[1:]]
        cells += [f"{r['plain'] / r['ours']:.2f}x", f"{r['curvlinops'] / r['ours']:.2f}x", f"{r['ours'] / r['floor']:.1f}x"]
        print("| " + " | ".join(cells) + " |")
    print()
    for r in rows:
        print(f"{r['case']}: eigenvalues vs plain max rel err {r['eig_rel_err']:.1e} (above 1e-4 of the max); "
              f"feature max |diff| {r['feat_max_diff']:.3g}; plain eig+hist {r['plain eig+hist']:.3f} s")
    if args.candidates:
        throughput(args.candidates, args.device, args.throughput_batch)


if __name__ == "__main__":
    main()
