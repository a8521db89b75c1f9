"""nn.MultiheadAttention for the Fisher pass: its four linear maps as layers that hooks can see.

``nn.MultiheadAttention`` hands its weights to ``F.multi_head_attention_forward`` (or a fused
kernel), so forward hooks never see the query, key, value and output projections, not even its
``out_proj``, an ``nn.Linear`` that is never called as a module. For the duration of a Fisher pass,
``explicit_attention(model)`` makes every such module compute the same function explicitly:
each projection is an ``AttentionProjection`` module (a ``Linear`` layer of the spectrum, named
``<attention>.q``, ``.k``, ``.v`` and ``.out``) that reads its weight slice from the attention
module at every call, followed by scaled dot-product attention with the same masks, the same
dropout and the same ``add_bias_kv``/``add_zero_attn`` rules. Outputs, gradients and the random
numbers drawn by dropout are those of the unmodified module (tests check it in float64).
"""
from __future__ import annotations

import math
from contextlib import contextmanager
from functools import partial
from typing import Dict, Iterator, List, Optional, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F

__all__ = ["AttentionProjection", "explicit_attention", "attention_forward", "is_explicit"]

ROLES = ("q", "k", "v", "out")


class AttentionProjection(nn.Module):
    """One linear map of an ``nn.MultiheadAttention``: ``role`` is "q", "k", "v" or "out".

    It owns no parameters: ``weight`` and ``bias`` are views of the attention's own parameters,
    taken at every access, so gradients reach those parameters as in the unmodified module.
    """

    def __init__(self, attention: nn.MultiheadAttention, role: str):
        super().__init__()
        if role not in ROLES:
            raise ValueError(f"role must be one of {ROLES}, got {role!r}")
        self.role = role
        # Outside _modules on purpose: registered, the attention (and its parameters) would
        # become a child of its own projection.
        self.__dict__["attention"] = attention

    @property
    def weight(self) -> torch.Tensor:
        m = self.attention
        if self.role == "out":
            return m.out_proj.weight
        if m.in_proj_weight is None:  # kdim or vdim differs from embed_dim
            return getattr(m, f"{self.role}_proj_weight")
        return m.in_proj_weight.chunk(3)[ROLES.index(self.role)]

    @property
    def bias(self) -> Optional[torch.Tensor]:
        m = self.attention
        if self.role == "out":
            return m.out_proj.bias
        return None if m.in_proj_bias is None else m.in_proj_bias.chunk(3)[ROLES.index(self.role)]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.weight, self.bias)

    def extra_repr(self) -> str:
        return f"role={self.role!r}, in_features={self.weight.shape[1]}, out_features={self.weight.shape[0]}"


def is_explicit(module: nn.Module) -> bool:
    """Whether ``explicit_attention`` takes this module over: an ``nn.MultiheadAttention`` whose
    forward is the class's own (a subclass or instance that overrides it computes something else)."""
    return (isinstance(module, nn.MultiheadAttention)
            and type(module).forward is nn.MultiheadAttention.forward
            and "forward" not in vars(module))


def _additive(mask: Optional[torch.Tensor], name: str, dtype: torch.dtype) -> Optional[torch.Tensor]:
    """A boolean mask (True = do not attend) as 0/-inf in ``dtype``; a float mask as it is."""
    if mask is None or torch.is_floating_point(mask):
        return mask
    if mask.dtype != torch.bool:
        raise ValueError(f"{name} must be boolean or floating point, got {mask.dtype}")
    return torch.zeros_like(mask, dtype=dtype).masked_fill_(mask, float("-inf"))


def _merged_mask(attn_mask, key_padding_mask, b: int, h: int, tgt: int, src: int) -> Optional[torch.Tensor]:
    """The additive masks as one tensor that broadcasts to [b, h, tgt, src], or None."""
    merged = None
    if attn_mask is not None:
        if attn_mask.dim() == 2 and attn_mask.shape == (tgt, src):
            merged = attn_mask.view(1, 1, tgt, src)
        elif attn_mask.dim() == 3 and attn_mask.shape == (b * h, tgt, src):
            merged = attn_mask.view(b, h, tgt, src)
        else:
            raise ValueError(f"attn_mask has shape {tuple(attn_mask.shape)}; expected ({tgt}, {src}) or "
                             f"(batch * num_heads, {tgt}, {src}) = ({b * h}, {tgt}, {src})")
    if key_padding_mask is not None:
        if key_padding_mask.shape != (b, src):
            raise ValueError(f"key_padding_mask has shape {tuple(key_padding_mask.shape)}; "
                             f"expected (batch, source length) = ({b}, {src})")
        padding = key_padding_mask.view(b, 1, 1, src)
        merged = padding if merged is None else merged + padding
    return merged


def attention_forward(attention: nn.MultiheadAttention, proj: Dict[str, nn.Module], query, key, value,
                      key_padding_mask=None, need_weights=True, attn_mask=None, average_attn_weights=True,
                      is_causal=False) -> Tuple[torch.Tensor, Optional[torch.Tensor]]:
    """``attention(query, key, value, ...)`` (the arguments of ``nn.MultiheadAttention.forward``)
    with the projections computed by the modules ``proj["q"]``, ..., ``proj["out"]``.

    Works batch-first internally. The tensors that dropout draws random numbers for (the
    attention weights, or those ``scaled_dot_product_attention`` computes from its arguments) hold
    their elements in the unmodified module's order, so a seeded pass drops the same weights.
    """
    m = attention
    if query.is_nested or key.is_nested or value.is_nested:
        raise ValueError("the Fisher pass needs padded tensors, got a nested tensor: pass padded "
                         "inputs and a key_padding_mask instead")
    batched = query.dim() == 3
    if not batched:
        query, key, value = query.unsqueeze(0), key.unsqueeze(0), value.unsqueeze(0)
        if key_padding_mask is not None:
            key_padding_mask = key_padding_mask.unsqueeze(0)
    elif not m.batch_first:
        query, key, value = query.transpose(0, 1), key.transpose(0, 1), value.transpose(0, 1)
    b, tgt, _ = query.shape
    h, e = m.num_heads, m.embed_dim
    if key.shape[:2] != value.shape[:2]:
        raise ValueError(f"key and value differ in batch or length: {tuple(key.shape)} and {tuple(value.shape)}")

    key_padding_mask = _additive(key_padding_mask, "key_padding_mask", query.dtype)
    if is_causal and attn_mask is None:
        raise ValueError("is_causal=True is a hint that attn_mask is the causal mask; "
                         "pass the mask too (nn.Transformer.generate_square_subsequent_mask)")
    # As in torch: with no padding mask and no weights to return, the causal hint replaces the
    # mask (scaled_dot_product_attention builds it); otherwise the given mask is used.
    causal = is_causal and key_padding_mask is None and not need_weights
    mask = _merged_mask(None if causal else _additive(attn_mask, "attn_mask", query.dtype),
                        key_padding_mask, b, h, tgt, key.shape[1])

    q, k, v = proj["q"](query), proj["k"](key), proj["v"](value)
    extra = []
    if m.bias_k is not None:  # add_bias_kv: one more key and value, learned, for every sample
        extra.append((m.bias_k.expand(b, 1, e), m.bias_v.expand(b, 1, e)))
    if m.add_zero_attn:
        zero = torch.zeros(b, 1, e, dtype=k.dtype, device=k.device)
        extra.append((zero, zero))
    if extra:
        k = torch.cat([k] + [ek for ek, _ in extra], dim=1)
        v = torch.cat([v] + [ev for _, ev in extra], dim=1)
        if mask is not None:  # the extra keys are never masked
            mask = F.pad(mask, (0, len(extra)))
    src = k.shape[1]

    def heads(t, length):  # [b, length, e] -> [b, h, length, e / h]
        return t.reshape(b, length, h, e // h).transpose(1, 2)

    q, k, v = heads(q, tgt), heads(k, src), heads(v, src)
    dropout_p = m.dropout if m.training else 0.0
    weights = None
    if need_weights:
        scores = (q * math.sqrt(1.0 / (e // h))) @ k.transpose(-2, -1)
        if mask is not None:
            scores = scores + mask
        weights = torch.softmax(scores, dim=-1)
        if dropout_p > 0.0:
            weights = F.dropout(weights, p=dropout_p)
        out = weights @ v
        if average_attn_weights:
            weights = weights.mean(dim=1)
    else:
        out = F.scaled_dot_product_attention(q, k, v, mask, dropout_p, is_causal=causal)
    out = proj["out"](out.transpose(1, 2).reshape(b, tgt, e))

    if not batched:
        return out.squeeze(0), None if weights is None else weights.squeeze(0)
    return (out if m.batch_first else out.transpose(0, 1)), weights


@contextmanager
def explicit_attention(model: nn.Module) -> Iterator[Dict[nn.Module, str]]:
    """Within the block, every ``nn.MultiheadAttention`` of ``model`` (``is_explicit``) computes
    ``attention_forward`` with fresh ``AttentionProjection`` modules; yields them with their names.

    The block also turns off torch's fused attention paths (``torch.backends.mha``, a setting of
    the whole process): an ``nn.TransformerEncoder`` in eval mode would otherwise pass nested
    tensors between its layers or bypass the layers' modules altogether. On exit, also by an
    exception, the model and that setting are as they were.
    """
    found: List[Tuple[str, nn.MultiheadAttention]] = [(n, m) for n, m in model.named_modules() if is_explicit(m)]
    if not found:
        yield {}
        return
    fastpath = torch.backends.mha.get_fastpath_enabled()
    named: Dict[nn.Module, str] = {}
    try:
        torch.backends.mha.set_fastpath_enabled(False)
        for name, m in found:
            proj = {role: AttentionProjection(m, role) for role in ROLES}
            # An instance attribute shadows the class's forward; nn.Module.__call__ (and with it
            # the user's own hooks on the attention) is unchanged.
            m.forward = partial(attention_forward, m, proj)
            named.update({p: f"{name}.{role}" for role, p in proj.items()})
        yield named
    finally:
        for _, m in found:
            vars(m).pop("forward", None)
        torch.backends.mha.set_fastpath_enabled(fastpath)
