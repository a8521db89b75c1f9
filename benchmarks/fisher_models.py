"""Models of the Fisher-spectrum benchmarks and tests (CIFAR-100 and MNIST shapes)."""
import torch.nn as nn

# All-CNN-C (Springenberg et al. 2015) as in the AQuaSurF benchmarks: (out channels, kernel,
# stride, padding) per convolution; every convolution is followed by the activation.
ALL_CNN_C_LAYERS = [(96, 3, 1, 1), (96, 3, 1, 1), (96, 3, 2, 1), (192, 3, 1, 1), (192, 3, 1, 1),
                    (192, 3, 2, 1), (192, 3, 1, 0), (192, 1, 1, 0)]


def all_cnn_c(activation: nn.Module, n_classes: int = 100, in_channels: int = 3) -> nn.Module:
    layers, c = [], in_channels
    for out, k, s, p in ALL_CNN_C_LAYERS:
        layers += [nn.Conv2d(c, out, k, s, p), activation]
        c = out
    layers += [nn.Conv2d(c, n_classes, 1), nn.AdaptiveAvgPool2d(1), nn.Flatten()]
    return nn.Sequential(*layers)


def mlp(activation: nn.Module, sizes=(784, 512, 512, 10)) -> nn.Module:
    layers = [nn.Flatten()]
    for i in range(len(sizes) - 1):
        layers.append(nn.Linear(sizes[i], sizes[i + 1]))
        if i < len(sizes) - 2:
            layers.append(activation)
    return nn.Sequential(*layers)
