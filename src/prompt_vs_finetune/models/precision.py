"""Reduced-precision inference: the test split scored / generated in float16, bfloat16 or int8.

Every arm is scored at one `inference_dtype`; the fine-tuned arms train as `trainer.precision`
says and are cast only after training, right before the test. So arms stay comparable at any
inference precision, and the precision's own effect (quality, speed, weight memory) is what
changes between two runs of the same job that differ only in `inference_dtype`.
"""

import importlib.util
import warnings

import torch
from torch import nn

from ..errors import UserError

INFERENCE_DTYPES = ("float32", "float16", "bfloat16", "int8")


def _device_type(device) -> str:
    """A torch device type from a device, a device type or a Lightning accelerator name."""
    kind = torch.device(device).type if isinstance(device, torch.device) else str(device)
    if kind == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return {"gpu": "cuda"}.get(kind, kind.split(":")[0])


def check_inference_dtype(name: str, device_type: str) -> None:
    """Fail before any work on a dtype that is unknown or that this device cannot run.
    `device_type`: a torch device type (cpu, cuda) or a Lightning accelerator (gpu, auto)."""
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
    """`model` ready to score in `name` on `device` (the model is changed in place; use the
    returned one: int8 merges LoRA adapters and replaces modules).

    float16 / bfloat16: every weight cast (LoRA adapters too, still unmerged), GPT-2's Conv1D
    layers made nn.Linear (same numbers; see `conv1d_to_linear` for why). int8: LoRA
    merged first (quantized base weights cannot take an adapter), GPT-2's Conv1D layers made
    nn.Linear, then every Linear given 8-bit weights: on CPU by dynamic quantization (int8
    per-channel weights, activations quantized per batch, int8 matrix products; the rest in
    float32), on CUDA by bitsandbytes LLM.int8() (Linear8bitLt; the rest in float16; untested
    here: no GPU). An output layer tied to the input embeddings is not quantized (see
    `_tied_head`), nor are embeddings and layer norms.
    """
    check_inference_dtype(name, _device_type(device))
    if name == "float32":
        return model
    if name in ("float16", "bfloat16"):
        return conv1d_to_linear(model).to(getattr(torch, name))
    if hasattr(model, "merge_and_unload"):  # peft
        model = model.merge_and_unload()
    conv1d_to_linear(model)
    skip = _tied_head(model)
    linears = [(path, m) for path, m in model.named_modules()
               if isinstance(m, nn.Linear) and m is not skip]
    if _device_type(device) == "cuda":
        return _bitsandbytes_int8(model, linears, torch.device(device))
    from torch.ao.quantization import per_channel_dynamic_qconfig, quantize_dynamic

    model.float()  # CPU int8 kernels take float32 (a model trained in bf16-true is not)

    # torch marks eager quantization deprecated (in favour of torchao, not a dependency here)
    # but 2.13 still ships it; its warnings would repeat in every job's log
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", UserWarning)
        return quantize_dynamic(model, {n: per_channel_dynamic_qconfig for n, _ in linears},
                                dtype=torch.qint8, inplace=True)


def _tied_head(model: nn.Module) -> nn.Module | None:
    """The output layer when it shares its weight with the input embeddings (GPT-2), else None.

    It stays unquantized: the embedding lookup needs the float matrix anyway, so an int8
    copy would add memory (a quarter of the largest matrix) rather than save it and would
    untie the two; and in scoring only a few positions reach it (logits_to_keep), so its int8
    speed-up would be small while its error lands on every logit directly.
    """
    get_head = getattr(model, "get_output_embeddings", None)
    get_embeddings = getattr(model, "get_input_embeddings", None)
    head = get_head() if get_head else None
    embeddings = get_embeddings() if get_embeddings else None
    if head is None or embeddings is None:
        return None
    tied = getattr(head, "weight", None) is getattr(embeddings, "weight", 0)
    return head if tied else None


def conv1d_to_linear(model: nn.Module) -> nn.Module:
    """Replace every transformers Conv1D (GPT-1/GPT-2: y = x @ W + b, W stored [in, out]) by
    the equivalent nn.Linear (W transposed, same bias), in place. Quantizers and bitsandbytes
    look for nn.Linear and would otherwise leave every transformer block in float; and on a
    CPU without bf16/fp16 matrix units (AVX2) Conv1D's half-precision addmm takes a slow path,
    ~20x slower than Linear's (GPT-2 124M, measured). The base layer of a LoRA adapter is
    converted too; the adapter is told its base is no longer transposed (fan_in_fan_out)."""
    from transformers.pytorch_utils import Conv1D

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
    """Each Linear replaced by bitsandbytes' Linear8bitLt (LLM.int8(), outlier threshold 6 as
    transformers' load_in_8bit): its Int8Params quantize when moved from the CPU to the GPU,
    so the float weight goes through the CPU. The rest of the model runs in float16, as with
    load_in_8bit: the int8 kernels take float16 inputs (and warn on every call otherwise).
    UNTESTED on CUDA (no GPU here); the same code ran on bitsandbytes 0.50's CPU backend."""
    import bitsandbytes as bnb

    model.to(torch.float16)
    modules = dict(model.named_modules())
    for name, linear in linears:
        quantized = bnb.nn.Linear8bitLt(linear.in_features, linear.out_features,
                                        bias=linear.bias is not None, has_fp16_weights=False,
                                        threshold=6.0, device="meta")
        quantized.weight = bnb.nn.Int8Params(linear.weight.detach().cpu(), requires_grad=False,
                                             has_fp16_weights=False)
        if linear.bias is not None:
            quantized.bias = nn.Parameter(linear.bias.detach(), requires_grad=False)
        parent, _, child = name.rpartition(".")
        setattr(modules[parent] if parent else model, child, quantized.to(device))
    return model


def weight_memory_mb(model: nn.Module) -> float:
    """MiB the model's weights take as it is scored: parameters and buffers at their element
    size (shared tensors once), and dynamically quantized layers' packed int8 weights, which
    are neither (they hide in a `_packed_params` object), at 1 byte per weight plus their
    bias and per-channel scales. bitsandbytes' int8 weights are int8 parameters; their
    per-row scales (`SCB`) are counted too."""
    from torch.ao.nn.quantized.modules.linear import LinearPackedParams

    def size(t: torch.Tensor | None) -> int:
        return 0 if t is None else t.numel() * t.element_size()

    seen, total = set(), 0
    for tensor in [*model.parameters(), *model.buffers()]:
        if id(tensor) not in seen:
            seen.add(id(tensor))
            total += size(tensor) + size(getattr(tensor, "SCB", None))
    for module in model.modules():
        if isinstance(module, LinearPackedParams):
            weight, bias = module._weight_bias()
            total += size(weight) + size(bias)
            if weight.qscheme() in (torch.per_channel_affine, torch.per_channel_symmetric):
                total += size(weight.q_per_channel_scales())
                total += size(weight.q_per_channel_zero_points())
    return total / 2**20
