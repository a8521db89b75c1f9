"""Models of the Fisher-spectrum benchmarks and tests (CIFAR-100 and MNIST shapes): the package's
own networks (aquasurf_fast.tasks.models), named here as the benchmarks have always imported them,
and the cases of bench_fisher.py: each a builder with synthetic inputs of its dataset's shape."""
from typing import NamedTuple, Tuple

import torch

from aquasurf_fast.tasks.models import ALL_CNN_C_LAYERS, EncoderBlock, ViT, all_cnn_c, mlp


class Case(NamedTuple):
    name: str
    build: object  # build(activation) -> nn.Module
    input_shape: Tuple[int, ...]  # one sample's
    n_classes: int
    batches: Tuple[int, ...]  # the batch sizes measured by default

    def batch(self, size: int):
        """Synthetic (inputs, targets) of ``size`` samples, the same on every run (seed 0): the
        Fisher pass's cost depends on the shapes, not on the pixels."""
        gen = torch.Generator().manual_seed(0)
        return (torch.randn((size,) + self.input_shape, generator=gen),
                torch.randint(0, self.n_classes, (size,), generator=gen))


CASES = [
    Case("All-CNN-C", all_cnn_c, (3, 32, 32), 100, (32, 128)),
    Case("MLP 784-512-512-10", mlp, (1, 28, 28), 10, (128,)),
    Case("ViT 4x128", ViT, (3, 32, 32), 100, (32, 128)),
]

__all__ = ["ALL_CNN_C_LAYERS", "CASES", "Case", "EncoderBlock", "ViT", "all_cnn_c", "mlp"]
