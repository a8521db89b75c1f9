"""K candidate activation functions in one model: the batch is the K candidates' copies of the
Fisher batch, stacked, and ``StackedActivation`` applies candidate k's function to slice k.

That is the same computation as K separate models only when every layer treats the samples of a
batch independently and draws no random numbers. ``per_sample_proof`` says when the model's
structure guarantees it; ``mixing_reason`` names what rules it out (BatchNorm on batch statistics,
dropout in training mode). A model with neither is checked at run time (``fisher.batched``).
"""
from __future__ import annotations

from typing import List, Optional, Sequence

import torch
import torch.nn as nn

from ..nn import Activation, apply_by_slices

__all__ = ["NotStackable", "StackedActivation", "mixing_reason", "per_sample_proof"]


class NotStackable(RuntimeError):
    """The model cannot run its candidates stacked along the batch; they run one at a time."""


class StackedActivation(nn.Module):
    """Applies ``activations[k]`` to rows ``[k * slice_size, (k + 1) * slice_size)`` of dimension 0.

    Each slice goes through the candidate's own kernel (``nn.apply_by_slices``), so values and
    gradients are those of the candidate's model on its own slice, bit for bit. A tensor whose
    dimension 0 is not ``len(activations) * slice_size`` (a sequence-first layout, a reshaped
    batch) cannot be split by candidate: that raises NotStackable.
    """

    def __init__(self, activations: Sequence[Activation], slice_size: int):
        super().__init__()
        # A plain list, not submodules: the model sees one parameter-free module, like Activation.
        self.__dict__["activations"] = list(activations)
        self.slice_size = int(slice_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        k, b = len(self.activations), self.slice_size
        if x.dim() == 0 or x.shape[0] != k * b:
            raise NotStackable(f"an activation received shape {tuple(x.shape)}, whose dimension 0 is "
                               f"not the stacked batch of {k} candidates x {b} samples")
        return apply_by_slices(self.activations, x, b)

    def extra_repr(self) -> str:
        return f"{len(self.activations)} candidates, slice_size={self.slice_size}"


# Modules whose forward (the class's own) treats each sample of dimension 0 on its own and draws
# no random numbers, for any settings checked in _module_is_per_sample.
_ELEMENTWISE = tuple(getattr(nn, name) for name in (
    "ReLU", "ReLU6", "LeakyReLU", "PReLU", "ELU", "SELU", "CELU", "GELU", "SiLU", "Mish", "Sigmoid",
    "Tanh", "Softplus", "Softsign", "Hardtanh", "Hardswish", "Hardsigmoid", "LogSigmoid", "Tanhshrink",
    "Softshrink", "Hardshrink", "Threshold", "Identity"))
_PER_SAMPLE = _ELEMENTWISE + (
    nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.LayerNorm, nn.GroupNorm,
    nn.MaxPool1d, nn.MaxPool2d, nn.MaxPool3d, nn.AvgPool1d, nn.AvgPool2d, nn.AvgPool3d,
    nn.AdaptiveAvgPool1d, nn.AdaptiveAvgPool2d, nn.AdaptiveAvgPool3d, nn.AdaptiveMaxPool1d,
    nn.AdaptiveMaxPool2d, nn.AdaptiveMaxPool3d, nn.ZeroPad2d, nn.ConstantPad1d, nn.ConstantPad2d,
    nn.ConstantPad3d, nn.ReflectionPad1d, nn.ReflectionPad2d, nn.ReplicationPad1d, nn.ReplicationPad2d,
    nn.Sequential, StackedActivation)
# Per sample when they leave dimension 0 alone (the attribute named is at least 1).
_DIM_ARGUMENT = {nn.Flatten: "start_dim", nn.Unflatten: "dim", nn.Softmax: "dim", nn.LogSoftmax: "dim"}
_DROPOUT = (nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.Dropout3d, nn.AlphaDropout, nn.FeatureAlphaDropout)


def _module_is_per_sample(m: nn.Module) -> bool:
    if "forward" in vars(m) or m._forward_hooks or m._forward_pre_hooks:
        return False  # a user's forward or hook may do anything
    # Exact types only: a subclass may compute something else.
    if type(m) in _DIM_ARGUMENT:
        dim = getattr(m, _DIM_ARGUMENT[type(m)])
        return dim is not None and dim >= 1  # a negative dim may be 0 for some input rank
    return type(m) in _PER_SAMPLE or (type(m) in _DROPOUT and not m.training)


def per_sample_proof(model: nn.Module) -> bool:
    """Whether the model is a tree of modules that each provably treat samples independently
    (nn.Sequential of Linear, convolutions, pooling, elementwise activations, ...)."""
    return all(_module_is_per_sample(m) for m in model.modules())


def mixing_reason(model: nn.Module) -> Optional[str]:
    """Why the candidates of this model cannot share a batch, or None when nothing rules it out:
    normalization over batch statistics mixes the candidates' samples, and random draws
    (dropout in training mode) would differ from those of a model run on one candidate."""
    found: List[str] = []
    for name, m in model.named_modules():
        name = name or "<model>"
        if isinstance(m, nn.modules.batchnorm._BatchNorm) and (m.training or m.running_mean is None):
            found.append(f"{name} ({type(m).__name__} normalizes over the batch)")
        elif isinstance(m, _DROPOUT) and m.training and m.p > 0:
            found.append(f"{name} ({type(m).__name__} in training mode draws random numbers)")
        elif isinstance(m, nn.MultiheadAttention) and m.training and m.dropout > 0:
            found.append(f"{name} (MultiheadAttention with dropout in training mode)")
        elif isinstance(m, nn.RNNBase) and m.training and m.dropout > 0:
            found.append(f"{name} ({type(m).__name__} with dropout in training mode)")
    return "; ".join(found) or None
