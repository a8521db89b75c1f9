"""The CIFAR tasks end to end on tiny data sets written in CIFAR's own on-disk layout."""
import dataclasses
import math
import sys
import types

import numpy as np
import pytest
import torch

import aquasurf_fast as aq
from aquasurf_fast.tasks import cifar_data, load_task
from cifar_helpers import write_cifar

CIFAR_TASKS = ["cifar100-allcnnc", "cifar10-resnet20", "cifar10-vit"]
N_TRAIN = {"cifar10": 320, "cifar100": 100}  # All-CNN-C is the slow one on a CPU
N_TEST = {"cifar10": 64, "cifar100": 20}


@pytest.fixture(scope="module", autouse=True)
def tiny_cifar(tmp_path_factory):
    """Both tiny sets in a private data folder; returns the number of classes they use."""
    root = tmp_path_factory.mktemp("datasets")
    classes = {name: write_cifar(str(root), name, n_train=n, n_test=N_TEST[name])
               for name, n in N_TRAIN.items()}
    mp = pytest.MonkeyPatch()
    mp.setenv("AQUASURF_DATA", str(root))
    cifar_data._splits.cache_clear()
    yield classes
    cifar_data._splits.cache_clear()
    mp.undo()


@pytest.mark.parametrize("name", CIFAR_TASKS)
def test_cifar_task_builds_and_has_a_fisher_batch(name):
    task = load_task(name)
    inputs, targets = task.fisher_batch()
    dataset = name.split("-")[0]
    n = min(128, N_TRAIN[dataset] - N_TRAIN[dataset] // 10)  # one batch, or the tiny set's all
    assert inputs.shape == (n, 3, 32, 32) and inputs.dtype == torch.float32
    assert targets.shape == (n,) and targets.dtype == torch.int64
    n_classes = 100 if dataset == "cifar100" else 10
    assert task.build(aq.Activation("relu(x)"))(inputs).shape == (n, n_classes)
    assert task.resources == {"num_gpus": 1}


def test_allcnnc_fisher_features_have_the_spec_length():
    task = load_task("cifar100-allcnnc")
    inputs, targets = task.fisher_batch()  # the length does not depend on the batch size
    feats, ok, reasons = aq.fisher_features_for(task.build, ["relu(x)"], inputs[:16],
                                                targets[:16], progress=False)
    assert ok.all(), reasons
    assert feats.shape == (1, 13857)  # SPEC section 4


def test_vit_fisher_spectrum_counts_its_attention():
    task = load_task("cifar10-vit")
    inputs, targets = task.fisher_batch()
    torch.manual_seed(42)
    spectrum = aq.fisher_spectrum(task.build(aq.Activation("relu(x)")), inputs[:16], targets[:16])
    names = [layer.name for layer in spectrum.layers]
    for part in ("q", "k", "v", "out"):
        assert f"blocks.0.attn.{part}" in names


def test_splits_are_fixed_disjoint_and_normalized():
    data = cifar_data.splits("cifar10")
    assert data["x_train"].dtype == torch.uint8 and data["x_train"].shape[1:] == (3, 32, 32)
    assert data["x_val"].shape[0] == N_TRAIN["cifar10"] // 10
    assert data["x_train"].shape[0] + data["x_val"].shape[0] == N_TRAIN["cifar10"]
    raw = cifar_data.load_arrays("cifar10")["x_train"].reshape(N_TRAIN["cifar10"], -1)
    rows = {r.tobytes(): i for i, r in enumerate(raw)}
    train = {rows[x.numpy().tobytes()] for x in data["x_train"]}
    val = {rows[x.numpy().tobytes()] for x in data["x_val"]}
    assert not train & val and len(train | val) == N_TRAIN["cifar10"]
    x = cifar_data.normalizer(data)(data["x_train"])
    torch.testing.assert_close(x.mean(dim=(0, 2, 3)), torch.zeros(3), atol=1e-4, rtol=0)
    torch.testing.assert_close(x.std(dim=(0, 2, 3)), torch.ones(3), atol=1e-2, rtol=0)


def test_augment_gives_crops_of_the_padded_image_flipped_or_not():
    batch = torch.arange(8 * 3 * 32 * 32, dtype=torch.float32).view(8, 3, 32, 32)
    out = cifar_data.augment(batch, torch.Generator().manual_seed(0))
    again = cifar_data.augment(batch, torch.Generator().manual_seed(0))
    assert out.shape == batch.shape and torch.equal(out, again)
    padded = torch.nn.functional.pad(batch, (4, 4, 4, 4))
    flipped = 0
    for b in range(8):
        matches = [(dy, dx, f) for dy in range(9) for dx in range(9) for f in (False, True)
                   if torch.equal(out[b], _crop(padded[b], dy, dx, f))]
        assert len(matches) == 1
        flipped += matches[0][2]
    assert 0 < flipped < 8  # both kinds occur among 8 draws under this seed


def _crop(image, dy, dx, flip):
    crop = image[:, dy:dy + 32, dx:dx + 32]
    return crop.flip(2) if flip else crop


@pytest.mark.parametrize("name", ["cifar10-resnet20", "cifar10-vit"])
def test_one_epoch_on_the_tiny_set_beats_chance(name, tiny_cifar):
    result = load_task(name).train_eval(aq.Activation("relu(x)"), epochs=1, device="cpu")
    chance = 1.0 / tiny_cifar["cifar10"]
    assert result["val_acc"] > chance + 0.1 and result["test_acc"] > chance + 0.1, result


@pytest.mark.slow
def test_allcnnc_trains_one_epoch_on_the_tiny_set(tiny_cifar):
    # One SGD step at the recipe's small learning rate cannot separate classes yet; what it
    # can do is move the 100-way output towards the few classes the data holds.
    from aquasurf_fast.tasks import cifar100_allcnnc as task

    result = task.train_eval(aq.Activation("relu(x)"), epochs=1, device="cpu")
    assert all(math.isfinite(v) for v in result.values()), result
    untrained = cifar_data.train_eval("cifar100", task.build, aq.Activation("relu(x)"), task.RECIPE,
                                  seed=task.SEED, epochs=0, device="cpu", amp=False,
                                  data_dir=None)
    assert result["val_loss"] < untrained["val_loss"] - 1e-3, (result, untrained)


def _small_net(activation):
    """A network far cheaper than the tasks' own, for what does not depend on the network."""
    return torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, 2, 1), activation,
                               torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(),
                               torch.nn.Linear(8, 10))


def test_the_device_option_reaches_the_model_and_the_batches(device):
    from aquasurf_fast.tasks import cifar10_vit

    seen = []

    def build(activation):
        model = _small_net(activation)
        model.register_forward_pre_hook(
            lambda m, args: seen.append((next(m.parameters()).device, args[0].device)))
        return model

    cifar_data.train_eval("cifar10", build, aq.Activation("relu(x)"), cifar10_vit.RECIPE, seed=0,
                      epochs=1, device=device, amp=False, data_dir=None)
    assert seen and all(p.type == device and x.type == device for p, x in seen)


def test_mixed_precision_trains(device, tiny_cifar):
    from aquasurf_fast.tasks import cifar10_vit

    dtypes = set()

    def build(activation):
        model = _small_net(activation)
        model[0].register_forward_hook(lambda m, args, out: dtypes.add(out.dtype))
        return model

    recipe = dataclasses.replace(cifar10_vit.RECIPE, lr=0.02)
    result = cifar_data.train_eval("cifar10", build, aq.Activation("swish(x)"), recipe, seed=0,
                               epochs=2, device=device, amp=True, data_dir=None)
    assert dtypes == {torch.float16 if device == "cuda" else torch.bfloat16}
    assert all(math.isfinite(v) for v in result.values()), result
    assert result["val_acc"] > 1.0 / tiny_cifar["cifar10"] + 0.1, result


def test_activation_computes_half_precision_in_float32():
    x = torch.randn(64, dtype=torch.bfloat16, requires_grad=True)
    y = aq.Activation("swish(x)")(x)
    assert y.dtype == torch.bfloat16
    torch.testing.assert_close(y, torch.nn.functional.silu(x.float()).to(torch.bfloat16))
    y.sum().backward()
    assert x.grad.dtype == torch.bfloat16


def test_missing_data_without_torchvision_names_the_folder(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "torchvision", None)  # import torchvision fails
    with pytest.raises(ImportError, match="aquasurf_fast\\[vision\\]") as exc:
        cifar_data.load_arrays("cifar10", str(tmp_path))
    assert str(tmp_path / "cifar-10-batches-py") in str(exc.value)


def test_a_failed_download_names_the_folder_to_fill(tmp_path, monkeypatch):
    def offline(*args, **kwargs):
        raise OSError("[Errno -3] Temporary failure in name resolution")

    datasets = types.SimpleNamespace(CIFAR10=offline, CIFAR100=offline)
    monkeypatch.setitem(sys.modules, "torchvision", types.SimpleNamespace(datasets=datasets))
    with pytest.raises(OSError, match="without internet access") as exc:
        cifar_data.load_arrays("cifar100", str(tmp_path))
    assert str(tmp_path / "cifar-100-python") in str(exc.value)


def test_a_short_or_damaged_batch_file_is_refused(tmp_path):
    import pickle

    write_cifar(str(tmp_path), "cifar10", n_train=50, n_test=10)
    path = tmp_path / "cifar-10-batches-py" / "test_batch"
    with open(path, "wb") as f:
        pickle.dump({b"data": np.zeros((10, 3072), np.uint8), b"labels": [0] * 9}, f)
    with pytest.raises(ValueError, match="10 images but 9 labels"):
        cifar_data.load_arrays("cifar10", str(tmp_path))
