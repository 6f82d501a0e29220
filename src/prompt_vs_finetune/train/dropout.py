"""Dropout at about half its cost when training on a CPU.

torch draws a CPU dropout mask one element at a time from its Mersenne Twister, each a
Bernoulli of a double-precision uniform (its parallel MKL generator runs on Intel CPUs only).
Here numpy's PCG64 fills the mask's float32 uniforms about four times faster, which makes a
`tiny` training step on 2 AMD cores 1.13x faster for full fine-tuning and 1.31x for LoRA (its
dropout on every adapted layer; bench/dropout.py). It is the same keep-mask, Bernoulli(1 - p)
to 2^-24, seeded for each mask from torch's generator, so the job's seed and the RNG state a
resume checkpoint saves decide every mask as they decide torch's. While a model trains on a
CPU, `CpuDropout` puts it in every `nn.Dropout` (the model's and LoRA's) and in SDPA
attention's dropout; scoring runs none. A GPU keeps torch's own fused kernel.
`~callbacks.cpu_dropout` turns it off.
"""

import numpy as np
import torch
from lightning.pytorch.callbacks import Callback
from transformers import AttentionInterface
from transformers.integrations.sdpa_attention import repeat_kv, sdpa_attention_forward
from transformers.masking_utils import ALL_MASK_ATTENTION_FUNCTIONS, sdpa_mask

ATTENTION = "sdpa_cpu_dropout"  # SDPA, with this module's dropout when training on a CPU


def fast_dropout(x: torch.Tensor, p: float) -> torch.Tensor:
    """`torch.nn.functional.dropout(x, p, training=True)`: x times a mask of 0 and 1 / (1 - p),
    made in place in one buffer of numpy's PCG64 float32 uniforms, seeded from torch's CPU
    generator."""
    if p >= 1.0:
        return x * 0.0
    seed = int(torch.randint(2**62, ()))
    mask = np.random.Generator(np.random.PCG64(seed)).random(x.numel(), np.float32)
    np.greater_equal(mask, p, out=mask)
    mask *= 1.0 / (1.0 - p)
    return x * torch.from_numpy(mask).view(x.shape).to(x.dtype)


class FastDropout(torch.nn.Dropout):
    """An `nn.Dropout` (same `p`, same place in the model) by `fast_dropout`."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return fast_dropout(x, self.p) if self.training and self.p > 0 else x


def attention(module, query, key, value, attention_mask, dropout: float = 0.0,
              scaling: float | None = None, is_causal: bool | None = None, **kwargs):
    """transformers' SDPA attention; with dropout on a CPU, the same product written out, so
    the attention weights' dropout mask can be `fast_dropout`'s (SDPA draws its own)."""
    if (not dropout or query.device.type != "cpu" or kwargs.get("position_bias") is not None
            or kwargs.get("softcap") is not None):
        return sdpa_attention_forward(module, query, key, value, attention_mask,
                                      dropout=dropout, scaling=scaling, is_causal=is_causal,
                                      **kwargs)
    groups = getattr(module, "num_key_value_groups", 1)
    if groups > 1:
        key, value = repeat_kv(key, groups), repeat_kv(value, groups)
    scale = query.shape[-1] ** -0.5 if scaling is None else scaling
    scores = torch.matmul(query, key.transpose(-1, -2)) * scale
    causal = getattr(module, "is_causal", True) if is_causal is None else is_causal
    if attention_mask is None and causal and query.shape[2] > 1:  # SDPA's is_causal: top-left
        attention_mask = torch.ones(query.shape[2], key.shape[2], dtype=torch.bool,
                                    device=query.device).tril()
    if attention_mask is not None and attention_mask.dtype == torch.bool:
        scores = scores.masked_fill(~attention_mask, torch.finfo(scores.dtype).min)
    elif attention_mask is not None:
        scores = scores + attention_mask
    weights = fast_dropout(torch.softmax(scores, dim=-1), dropout)
    return torch.matmul(weights, value).transpose(1, 2).contiguous(), None


AttentionInterface.register(ATTENTION, attention)
ALL_MASK_ATTENTION_FUNCTIONS.register(ATTENTION, sdpa_mask)  # the masks SDPA takes


class CpuDropout(Callback):
    """For the fit only, on a CPU: every `nn.Dropout` of the model becomes a `FastDropout`,
    and SDPA attention `attention`; both put back when the fit ends."""

    def __init__(self):
        self.swapped: list[tuple[torch.nn.Module, str, torch.nn.Module]] = []
        self.configs: list = []

    def on_fit_start(self, trainer, pl_module) -> None:
        if pl_module.device.type != "cpu":
            return
        for parent in list(pl_module.modules()):
            for name, child in list(parent.named_children()):
                if type(child) is torch.nn.Dropout:
                    self.swapped.append((parent, name, child))
                    setattr(parent, name, FastDropout(child.p))
            config = getattr(parent, "config", None)  # shared by the model's modules
            if getattr(config, "_attn_implementation", None) == "sdpa":
                config._attn_implementation = ATTENTION
                self.configs.append(config)

    def on_fit_end(self, trainer, pl_module) -> None:
        for parent, name, child in self.swapped:
            setattr(parent, name, child)
        for config in self.configs:
            config._attn_implementation = "sdpa"
        self.swapped, self.configs = [], []
