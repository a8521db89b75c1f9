"""Models of the Fisher-spectrum benchmarks and tests (CIFAR-100 and MNIST shapes)."""
import torch
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
                 dim: int = 128, depth: int = 4, heads: int = 4, mlp_dim: int = 256, in_channels: int = 3):
        super().__init__()
        self.patch = nn.Conv2d(in_channels, dim, patch, patch)
        self.cls = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos = nn.Parameter(0.02 * torch.randn(1, (image // patch) ** 2 + 1, dim))
        self.blocks = nn.Sequential(*[EncoderBlock(dim, heads, mlp_dim, activation) for _ in range(depth)])
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, n_classes)

    def forward(self, x):
        tokens = self.patch(x).flatten(2).transpose(1, 2)  # [B, patches, dim]
        tokens = torch.cat([self.cls.expand(x.shape[0], -1, -1), tokens], dim=1) + self.pos
        return self.head(self.norm(self.blocks(tokens))[:, 0])
