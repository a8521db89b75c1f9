"""Models of the Fisher-spectrum benchmarks and tests (CIFAR-100 and MNIST shapes): the package's
own networks (aquasurf_fast.tasks.models), named here as the benchmarks have always imported them."""
from aquasurf_fast.tasks.models import ALL_CNN_C_LAYERS, EncoderBlock, ViT, all_cnn_c, mlp

__all__ = ["ALL_CNN_C_LAYERS", "EncoderBlock", "ViT", "all_cnn_c", "mlp"]
