"""Reduced-precision inference: every arm scored at one `inference_dtype` (a fit cast after it)."""

import importlib.util
import warnings

import torch
from torch import nn
from transformers.pytorch_utils import Conv1D

from ..config import INFERENCE_DTYPES
from ..errors import UserError


def _device_type(device) -> str:
    """A torch device type from a device, a device type or a Lightning accelerator name."""
    names = {"gpu": "cuda", "auto": "cuda" if torch.cuda.is_available() else "cpu"}
    return names.get(str(device), str(device)).split(":")[0]


def check_inference_dtype(name: str, device_type: str) -> None:
    """Fails before any work on a dtype unknown or that this device cannot run."""
    if name not in INFERENCE_DTYPES:
        raise UserError(f"inference_dtype '{name}' is unknown; use {', '.join(INFERENCE_DTYPES)}")
    if name != "int8":
        return
    kind = _device_type(device_type)
    if kind == "cuda" and importlib.util.find_spec("bitsandbytes") is None:
        raise UserError("inference_dtype=int8 on CUDA needs bitsandbytes (8-bit weights); "
                        "`pip install bitsandbytes`, or use inference_dtype=float16/bfloat16")
    if kind == "cpu" and not hasattr(torch.ao.quantization, "quantize_dynamic"):
        raise UserError(f"inference_dtype=int8 on CPU needs torch.ao.quantization."
                        f"quantize_dynamic, which torch {torch.__version__} no longer has; "
                        "use inference_dtype=bfloat16")
    if kind not in ("cpu", "cuda"):
        raise UserError(f"inference_dtype=int8 runs on cpu or cuda, not {kind}; use "
                        "inference_dtype=float16/bfloat16")


def to_inference_dtype(model: nn.Module, name: str, device) -> nn.Module:
    """`model` cast in place to score in `name` on `device` (use the one returned)."""
    check_inference_dtype(name, _device_type(device))
    if name == "float32":
        return model
    if name in ("float16", "bfloat16"):
        return conv1d_to_linear(model).to(getattr(torch, name))
    if hasattr(model, "merge_and_unload"):  # peft
        model = model.merge_and_unload()
    conv1d_to_linear(model)
    # a tied output layer (GPT-2) stays float: its lookup needs it, and scoring reads few rows
    head = model.get_output_embeddings()
    tied = head is not None and head.weight is model.get_input_embeddings().weight
    linears = [(path, m) for path, m in model.named_modules()
               if isinstance(m, nn.Linear) and not (tied and m is head)]
    if _device_type(device) == "cuda":
        return _bitsandbytes_int8(model, linears, torch.device(device))
    from torch.ao.quantization import per_channel_dynamic_qconfig, quantize_dynamic

    model.float()  # CPU int8 kernels take float32 (a model trained in bf16-true is not)
    # deprecated (for torchao, not a dependency) but shipped: no warnings in every job's log
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", UserWarning)
        return quantize_dynamic(model, {n: per_channel_dynamic_qconfig for n, _ in linears},
                                dtype=torch.qint8, inplace=True)


def conv1d_to_linear(model: nn.Module) -> nn.Module:
    """GPT-1/2's Conv1D layers as nn.Linear, in place (why: docs/models.md)."""
    for parent in list(model.modules()):
        for child_name, child in list(parent.named_children()):
            if isinstance(child, Conv1D):
                weight = child.weight
                linear = nn.Linear(child.nx, child.nf, device=weight.device, dtype=weight.dtype)
                linear.weight = nn.Parameter(weight.detach().t().contiguous(),
                                             requires_grad=weight.requires_grad)
                linear.bias = child.bias
                setattr(parent, child_name, linear)
                if getattr(parent, "fan_in_fan_out", False):  # peft LoRA around a Conv1D
                    parent.fan_in_fan_out = False
    return model


def _bitsandbytes_int8(model: nn.Module, linears: list[tuple[str, nn.Linear]],
                       device: torch.device) -> nn.Module:
    """Each Linear a Linear8bitLt (as load_in_8bit), quantized on its move to the GPU."""
    import bitsandbytes as bnb

    model.to(torch.float16)
    for name, linear in linears:
        quantized = bnb.nn.Linear8bitLt(linear.in_features, linear.out_features,
                                        bias=linear.bias is not None, has_fp16_weights=False,
                                        threshold=6.0, device="meta")
        quantized.weight = bnb.nn.Int8Params(linear.weight.detach().cpu(), requires_grad=False,
                                             has_fp16_weights=False)
        if linear.bias is not None:
            quantized.bias = nn.Parameter(linear.bias.detach(), requires_grad=False)
        parent, _, child = name.rpartition(".")
        setattr(model.get_submodule(parent), child, quantized.to(device))
    return model


def weight_memory_mb(model: nn.Module) -> float:
    """MiB the model's weights take as it is scored: parameters and buffers (shared ones once,
    bitsandbytes' row scales `SCB` too), and what dynamically quantized layers pack."""
    from torch.ao.nn.quantized.modules.linear import LinearPackedParams

    def size(t: torch.Tensor | None) -> int:
        return 0 if t is None else t.numel() * t.element_size()

    tensors = {id(t): t for t in [*model.parameters(), *model.buffers()]}.values()
    total = sum(size(t) + size(getattr(t, "SCB", None)) for t in tensors)
    for module in model.modules():
        if isinstance(module, LinearPackedParams):
            weight, bias = module._weight_bias()
            total += size(weight) + size(bias)
            if weight.qscheme() in (torch.per_channel_affine, torch.per_channel_symmetric):
                total += size(weight.q_per_channel_scales()) + size(
                    weight.q_per_channel_zero_points())
    return total / 2**20
