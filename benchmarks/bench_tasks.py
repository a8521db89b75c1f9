"""What one candidate costs on the built-in CIFAR tasks: its Fisher features and one epoch of
training at the recipe's batch size.

For each task, on random images of CIFAR's shape (the cost does not depend on the pixels, and no
download is needed):

- Fisher: ``fisher_features_for`` on the task's Fisher batch (128 images), per candidate, over
  a few baseline functions after one warm-up candidate; checked first: finite features of the
  expected length (13,857 for All-CNN-C, SPEC section 4);
- step: one training step of the task's own loop (uint8 batch to the device, normalization,
  augmentation, forward, backward, optimizer step, learning-rate schedule) at batch 128, with
  ``aq.Activation("relu(x)")`` and, as the baseline, torch's ``nn.ReLU``; checked first: both
  give the same loss on the same first batch;
- epoch: 352 steps (45,000 training images / 128) times the median step; the evaluation of the
  validation and test images at the end of a training is not included.

    python benchmarks/bench_tasks.py [--threads 1] [--device cpu] [--repeats 3] [--amp]
"""
import argparse
import math
import os
import statistics
import sys
import time
import warnings
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import aquasurf_fast as aq  # noqa: E402
from aquasurf_fast.devices import resolve_device  # noqa: E402
from aquasurf_fast.tasks import cifar_data, load_task, training  # noqa: E402
from aquasurf_fast.tasks import cifar10_resnet20, cifar10_vit, cifar100_allcnnc  # noqa: E402
from _timing import print_table, sync  # noqa: E402

TASKS = {"cifar100-allcnnc": (cifar100_allcnnc, 100), "cifar10-resnet20": (cifar10_resnet20, 10),
         "cifar10-vit": (cifar10_vit, 10)}
CANDIDATES = ["relu(x)", "tanh(x)", "swish(x)", "elu(x)", "softplus(x)", "selu(x)"]
N_TRAIN = 45_000


def synthetic_data(n_classes: int, n: int) -> dict:
    gen = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (n, 3, 32, 32), generator=gen, dtype=torch.uint8)
    y = torch.randint(0, n_classes, (n,), generator=gen)
    return {"x_train": x, "y_train": y, "mean": torch.full((3,), 0.5),
            "std": torch.full((3,), 0.25)}


def fisher_seconds(module, data, device, repeats: int):
    """Seconds per candidate, and the feature length, of the task's Fisher pass."""
    inputs, targets = cifar_data.normalizer(data)(data["x_train"][:module.FISHER_BATCH]), \
        data["y_train"][:module.FISHER_BATCH]
    run = lambda names: aq.fisher_features_for(module.build, names, inputs, targets,  # noqa: E731
                                               device=device, progress=False, threads=None)
    feats, ok, reasons = run(CANDIDATES[:1])  # warm-up, and the correctness check
    assert ok.all() and torch.isfinite(torch.from_numpy(feats)).all(), reasons
    if module is cifar100_allcnnc:
        assert feats.shape[1] == 13857, feats.shape
    names = CANDIDATES[1:1 + repeats]
    start = time.perf_counter()
    run(names)
    return (time.perf_counter() - start) / len(names), feats.shape[1]


class Trainer:
    """One model of a task with its optimizer, taking one training step of the task's own loop on
    the same first batch each time it is called."""

    def __init__(self, module, data, activation, device, amp: bool):
        recipe = module.RECIPE
        self.recipe = training.Recipe(**{**recipe.__dict__, "prepare": cifar_data.normalizer(data),
                                       "augment": cifar_data.augment})
        self.batch = {"x_train": data["x_train"][:recipe.batch_size],
                      "y_train": data["y_train"][:recipe.batch_size]}
        torch.manual_seed(0)
        self.model = module.build(activation).to(device)
        self.opt = training._optimizer(self.model, self.recipe)
        self.scaler = torch.amp.GradScaler(device.type, enabled=amp and device.type == "cuda")
        self.gen = torch.Generator().manual_seed(0)
        self.device, self.amp, self.step, self.times, self.losses = device, amp, 0, [], []

    def __call__(self):
        sync(self.device)
        start = time.perf_counter()
        loss, self.step = training._epoch(self.model, self.opt, self.scaler, self.recipe, self.batch,
                                        self.gen, self.device, self.amp, self.step, 100)
        sync(self.device)
        self.times.append(time.perf_counter() - start)
        self.losses.append(loss)

    def median(self) -> float:
        return statistics.median(self.times[1:])  # the first step is a warm-up


def step_seconds(module, data, device, repeats: int, amp: bool):
    """Median seconds of one training step with our relu, with torch's, and (with ``amp``) with
    ours in mixed precision. The steps alternate, so that a change in the machine's load during
    the run falls on all of them alike. Checked first: ours and torch's lose the same."""
    trainers = [Trainer(module, data, aq.Activation("relu(x)"), device, False),
                Trainer(module, data, torch.nn.ReLU(), device, False)]
    if amp:
        trainers.append(Trainer(module, data, aq.Activation("relu(x)"), device, True))
    for _ in range(repeats + 1):
        for trainer in trainers:
            trainer()
    ours, base = trainers[0].losses[0], trainers[1].losses[0]
    assert math.isclose(ours, base, rel_tol=1e-4), (ours, base)
    return [t.median() for t in trainers]


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--tasks", default=",".join(TASKS))
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, help="torch threads (default: torch's own)")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--amp", action="store_true", help="time the step in mixed precision too")
    args = p.parse_args()
    # Every candidate of the ViT and the ResNet would repeat which layers the features skip.
    warnings.filterwarnings("ignore", message="fisher_spectrum skips")
    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device, "--device")
    rows = []
    for name in args.tasks.split(","):
        module, n_classes = TASKS[name]
        load_task(name)  # the task as the package loads it
        data = synthetic_data(n_classes, max(module.FISHER_BATCH, module.RECIPE.batch_size))
        fisher, width = fisher_seconds(module, data, device, args.repeats)
        ours, base, *amp = step_seconds(module, data, device, args.repeats, args.amp)
        steps = math.ceil(N_TRAIN / module.RECIPE.batch_size)
        row = [name, f"{fisher:.2f}", width, f"{ours:.3f}", f"{base:.3f}", f"{ours / base:.2f}",
               f"{steps * ours:.0f}"]
        if amp:
            row += [f"{amp[0]:.3f}", f"{steps * amp[0]:.0f}"]
        rows.append(row)
    header = ["task", "Fisher s/cand", "feature len", "step s (aq relu)", "step s (nn.ReLU)",
              "ratio", "epoch s (est.)"] + (["amp step s", "amp epoch s"] if args.amp else [])
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print_table(f"per candidate on {device}, {torch.get_num_threads()} torch thread(s), batch 128 "
                f"(epoch = {math.ceil(N_TRAIN / 128)} steps); {os.cpu_count()} cores, load average "
                f"{load:.1f} at the end", header, rows)


if __name__ == "__main__":
    main()
