"""A tiny CIFAR data set written to disk in the published python layout (pickled batches), for
running the CIFAR tasks end to end without the real data."""
import os
import pickle

import numpy as np

# Distinct mean colours per class: a network learns them within one short epoch.
_COLOURS = np.array([[230, 40, 40], [40, 230, 40], [40, 40, 230], [230, 230, 40]], dtype=np.float64)


def images(n: int, rng: np.random.RandomState):
    """``n`` noisy 32x32 images of the four colour classes, rows of 3072 uint8 (R, G, B planes)."""
    labels = rng.randint(0, len(_COLOURS), size=n)
    pixels = _COLOURS[labels][:, :, None] + rng.normal(0, 40, size=(n, 3, 1024))
    return np.clip(pixels, 0, 255).astype(np.uint8).reshape(n, 3072), labels.tolist()


def _dump(path: str, data: dict) -> None:
    with open(path, "wb") as f:
        pickle.dump(data, f)


def write_cifar(root: str, name: str, n_train: int = 400, n_test: int = 100) -> int:
    """Write ``name`` ("cifar10" or "cifar100") under ``root``; returns the number of classes
    used (the chance level of the tiny set is 1 / that)."""
    rng = np.random.RandomState(0)
    if name == "cifar10":
        folder = os.path.join(root, "cifar-10-batches-py")
        os.makedirs(folder, exist_ok=True)
        for i, count in enumerate(np.array_split(np.arange(n_train), 5), 1):
            x, y = images(len(count), rng)
            _dump(os.path.join(folder, f"data_batch_{i}"), {b"data": x, b"labels": y})
        x, y = images(n_test, rng)
        _dump(os.path.join(folder, "test_batch"), {b"data": x, b"labels": y})
    else:
        folder = os.path.join(root, "cifar-100-python")
        os.makedirs(folder, exist_ok=True)
        for split, n in (("train", n_train), ("test", n_test)):
            x, y = images(n, rng)
            coarse = [label // 5 for label in y]
            _dump(os.path.join(folder, split), {b"data": x, b"fine_labels": y,
                                                b"coarse_labels": coarse})
    return len(_COLOURS)
