"""The networks of the paper's settings, each built around one activation module.

Every builder takes ``activation`` (an ``nn.Module``, usually ``aquasurf_fast.Activation``) and
places that one module wherever the architecture applies its nonlinearity; the modules are
stateless, so sharing one instance is the same as copying it.

- ``all_cnn_c``: All-CNN-C (Springenberg et al. 2015), convolutions only, no normalization;
- ``resnet``: the CIFAR residual networks of He et al. 2016 (``resnet(depth=20)`` is ResNet-20);
- ``ViT``: a small pre-norm vision transformer for 32x32 images;
- ``mlp``: a multi-layer perceptron (the Fisher benchmarks' MNIST shape).
"""
from __future__ import annotations

import torch
import torch.nn as nn
from torch.nn import functional as F

# (out channels, kernel, stride, padding) per convolution; every one is followed by the activation.
ALL_CNN_C_LAYERS = [(96, 3, 1, 1), (96, 3, 1, 1), (96, 3, 2, 1), (192, 3, 1, 1), (192, 3, 1, 1),
                    (192, 3, 2, 1), (192, 3, 1, 0), (192, 1, 1, 0)]


def all_cnn_c(activation: nn.Module, n_classes: int = 100, in_channels: int = 3) -> nn.Module:
    """All-CNN-C: nine convolutions, global average pooling, no fully connected layer."""
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


class BasicBlock(nn.Module):
    """Two 3x3 convolutions with batch norm; the activation after the first and after the sum.

    The shortcut is the parameter-free one of He et al.'s CIFAR networks (their option A): when
    the block halves the resolution and doubles the channels, the input is subsampled and the new
    channels are zeros, so every weight of the network belongs to a convolution or the classifier.
    """

    def __init__(self, c_in: int, c_out: int, stride: int, activation: nn.Module):
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.activation = activation
        self.stride, self.extra = stride, c_out - c_in

    def forward(self, x):
        y = self.activation(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        shortcut = x[:, :, ::self.stride, ::self.stride] if self.stride > 1 else x
        if self.extra:
            half = self.extra // 2
            shortcut = F.pad(shortcut, (0, 0, 0, 0, half, self.extra - half))
        return self.activation(y + shortcut)


class ResNet(nn.Module):
    """The CIFAR ResNet of depth 6n+2: a 3x3 stem of 16 channels, three stages of n blocks with
    16, 32 and 64 channels (the last two start by halving the resolution), global average pooling
    and a linear classifier."""

    def __init__(self, activation: nn.Module, depth: int = 20, n_classes: int = 10,
                 in_channels: int = 3):
        super().__init__()
        if depth < 8 or (depth - 2) % 6:
            raise ValueError(f"depth must be 6n+2 with n >= 1 (20, 32, 44, 56, 110), got {depth}")
        n = (depth - 2) // 6
        self.stem = nn.Sequential(nn.Conv2d(in_channels, 16, 3, 1, 1, bias=False),
                                  nn.BatchNorm2d(16), activation)
        blocks, c = [], 16
        for stage, width in enumerate((16, 32, 64)):
            for i in range(n):
                stride = 2 if stage > 0 and i == 0 else 1
                blocks.append(BasicBlock(c, width, stride, activation))
                c = width
        self.blocks = nn.Sequential(*blocks)
        self.head = nn.Linear(c, n_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):  # He initialization, as the paper that defines the net
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x):
        y = self.blocks(self.stem(x))
        return self.head(y.mean(dim=(2, 3)))


def resnet(activation: nn.Module, depth: int = 20, n_classes: int = 10) -> nn.Module:
    return ResNet(activation, depth=depth, n_classes=n_classes)


class EncoderBlock(nn.Module):
    """Pre-norm transformer encoder block, as torchvision's ViT writes it: x + attention(LN(x)),
    then x + MLP(LN(x)) with the activation between the MLP's two Linear layers."""

    def __init__(self, dim: int, heads: int, mlp_dim: int, activation: nn.Module):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = nn.MultiheadAttention(dim, heads, batch_first=True)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, mlp_dim), activation, nn.Linear(mlp_dim, dim))

    def forward(self, x):
        y = self.norm1(x)
        x = x + self.attn(y, y, y, need_weights=False)[0]
        return x + self.mlp(self.norm2(x))


class ViT(nn.Module):
    """A small vision transformer for 32x32 images: 4x4 patches embedded by a strided Conv2d
    (64 tokens and a class token, learned position embeddings), ``depth`` encoder blocks, and a
    Linear classifier on the class token."""

    def __init__(self, activation: nn.Module, n_classes: int = 100, image: int = 32, patch: int = 4,
                 dim: int = 128, depth: int = 4, heads: int = 4, mlp_dim: int = 256,
                 in_channels: int = 3):
        super().__init__()
        self.patch = nn.Conv2d(in_channels, dim, patch, patch)
        self.cls = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos = nn.Parameter(0.02 * torch.randn(1, (image // patch) ** 2 + 1, dim))
        self.blocks = nn.Sequential(*[EncoderBlock(dim, heads, mlp_dim, activation)
                                      for _ in range(depth)])
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, n_classes)

    def forward(self, x):
        tokens = self.patch(x).flatten(2).transpose(1, 2)  # [B, patches, dim]
        tokens = torch.cat([self.cls.expand(x.shape[0], -1, -1), tokens], dim=1) + self.pos
        return self.head(self.norm(self.blocks(tokens))[:, 0])


__all__ = ["ALL_CNN_C_LAYERS", "BasicBlock", "EncoderBlock", "ResNet", "ViT", "all_cnn_c", "mlp",
           "resnet"]
