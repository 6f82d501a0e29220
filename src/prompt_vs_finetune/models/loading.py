"""Load any Hugging Face causal LM (Hub name or local path) with its tokenizer, wrap LoRA."""

import logging
from collections.abc import Iterable
from pathlib import Path

import torch
from peft import LoraConfig, get_peft_model
from safetensors import SafetensorError
from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer, PreTrainedModel
from transformers.utils import logging as hf_logging

from ..errors import UserError
from ..hub import hub_offline_flag, hub_reachable
from .gguf import gguf_checkpoint
from .tiny import build_tiny

log = logging.getLogger(__name__)
hf_logging.disable_progress_bar()


def load_model(model_cfg, cache_dir: str, corpus: Iterable[str] = ()):
    """Return (model, tokenizer), the tokenizer with a pad token.

    `model.tiny` set: build (or reuse) a small random GPT-2 whose tokenizer is trained on
    `corpus`; `model.gguf` set: the GGUF file an installed package ships, as a cached plain
    checkpoint; otherwise load `model.name_or_path` from a local directory or the Hub.
    """
    if model_cfg.tiny:
        path = build_tiny(model_cfg.tiny, corpus, Path(cache_dir) / "tiny")
    elif model_cfg.get("gguf"):
        path = gguf_checkpoint(model_cfg.gguf, Path(cache_dir) / "gguf")
    else:
        path = _resolve(model_cfg.name_or_path)
    kwargs = {"revision": model_cfg.revision,
              "trust_remote_code": bool(model_cfg.trust_remote_code)}
    try:
        _check_causal(AutoConfig.from_pretrained(path, **kwargs), path)
        tokenizer = AutoTokenizer.from_pretrained(path, **kwargs)
        model = _from_pretrained(path, model_cfg.attn_implementation, kwargs)
    except ValueError as err:  # e.g. a BERT checkpoint: no causal-LM head for its config
        raise UserError(
            f"'{path}' is not a causal language model ({str(err).splitlines()[0][:160]}); "
            "pick a decoder model such as gpt2"
        ) from err
    except OSError as err:
        raise UserError(f"could not load model '{path}': {str(err).splitlines()[0]}") from err
    except SafetensorError as err:
        raise UserError(f"the weights of model '{path}' are unreadable ({err}); the file is "
                        "corrupted or incomplete: download it again (or delete the cached "
                        "copy)") from err
    _ensure_eos(model, tokenizer, model_cfg.eos_token, path)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    model.config.pad_token_id = tokenizer.pad_token_id
    if getattr(model, "loss_type", None) is None:
        # transformers guesses the loss from the class name, which GPT-2's (`...LMHeadModel`)
        # does not give, and warns on every fit; it is the causal-LM loss
        model.loss_type = "ForCausalLM"
    return model, tokenizer


def _from_pretrained(path: str, attn_implementation: str, kwargs: dict):
    """Load with the requested attention; architectures without it (GPT-1 has no SDPA path)
    fall back to their eager attention instead of failing."""
    try:
        return AutoModelForCausalLM.from_pretrained(
            path, attn_implementation=attn_implementation, **kwargs)
    except ValueError as err:
        if "does not support an attention implementation" not in str(err):
            raise
        log.warning("%s has no %s attention; using eager (set model.attn_implementation=eager "
                    "to silence this)", path, attn_implementation)
        return AutoModelForCausalLM.from_pretrained(path, attn_implementation="eager", **kwargs)


def _ensure_eos(model, tokenizer, eos_token: str | None, path: str) -> None:
    """Fine-tuned answers end with end-of-text, and generation stops at it. GPT-1 has none:
    `model.eos_token` adds one as a new special token, its embedding initialised at the mean
    of the others (resize_token_embeddings), which fine-tuning then learns to predict."""
    if tokenizer.eos_token is not None:
        return
    if not eos_token:
        raise UserError(f"the tokenizer of '{path}' has no end-of-text token; set "
                        "model.eos_token to add one (e.g. model.eos_token='<|endoftext|>')")
    tokenizer.add_special_tokens({"eos_token": eos_token})
    if len(tokenizer) > model.get_input_embeddings().num_embeddings:
        model.resize_token_embeddings(len(tokenizer))
    model.config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.eos_token_id = tokenizer.eos_token_id


def _check_causal(config, path: str) -> None:
    """A checkpoint saved as an encoder (BERT's BertModel / BertForMaskedLM) would load as
    a "causal LM" with a fresh, untrained head; refuse it instead of scoring noise."""
    architectures = getattr(config, "architectures", None) or []
    if architectures and not any(a.endswith(("ForCausalLM", "LMHeadModel"))
                                 for a in architectures):
        raise UserError(f"'{path}' is not a causal language model (it is a "
                        f"{', '.join(architectures)}); pick a decoder model such as gpt2")


def _resolve(name_or_path: str | None) -> str:
    """A local directory as is; a Hub name only if it is cached or the Hub can be reached."""
    if not name_or_path:
        raise UserError("model.name_or_path is empty; set a Hub name (gpt2) or a local directory")
    if Path(name_or_path).is_dir():
        return name_or_path
    if Path(name_or_path).expanduser().is_file():
        raise UserError(f"model.name_or_path={name_or_path} is a file; name the folder that "
                        "holds config.json and the weights (save_pretrained's output)")
    if name_or_path.startswith((".", "/", "~")) or name_or_path.count("/") > 1:
        raise UserError(f"local model path does not exist: {name_or_path} (model.name_or_path)")
    if _cached(name_or_path) or hub_reachable():
        return name_or_path
    hint = "" if hub_offline_flag() else " (no network?)"
    raise UserError(
        f"model '{name_or_path}' is not cached and the Hugging Face Hub cannot be reached{hint}; "
        "run offline with model=smollm2 (a pretrained model installed with the package), "
        "model.name_or_path=/path/to/a/local/model, or model=tiny (random weights, for smoke "
        "tests)"
    )


def _cached(name: str) -> bool:
    try:
        from huggingface_hub import try_to_load_from_cache

        return isinstance(try_to_load_from_cache(name, "config.json"), str)
    except Exception:  # noqa: BLE001 - any failure means "not usable from the cache"
        return False


def context_length(model: PreTrainedModel, override: int | None = None) -> int:
    """The context the job lays prompts out in: the model's positions, or `model.max_length`
    when set (and no longer than the positions: beyond them a forward pass indexes past its
    position embeddings)."""
    config = model.config
    positions = next((int(getattr(config, key)) for key in
                      ("n_positions", "max_position_embeddings", "n_ctx")
                      if getattr(config, key, None)), None)
    if override and positions and override > positions:
        raise UserError(f"model.max_length={override} is beyond the {positions} positions of "
                        "the model; lower it or set model.max_length=null")
    if override or positions:
        return int(override or positions)
    raise UserError("cannot tell the model's context length; set model.max_length")


def apply_lora(model: PreTrainedModel, lora_cfg):
    """Wrap `model` with peft LoRA adapters; only the adapters stay trainable."""
    config = LoraConfig(r=lora_cfg.r, lora_alpha=lora_cfg.alpha, lora_dropout=lora_cfg.dropout,
                        target_modules=list(lora_cfg.target_modules), task_type="CAUSAL_LM")
    try:
        adapted = get_peft_model(model, config)
    except ValueError as err:
        present = sorted({name.rsplit(".", 1)[-1] for name, _ in model.named_modules()
                          if name and not name.rsplit(".", 1)[-1].isdigit()})
        raise UserError(
            f"LoRA target modules {list(lora_cfg.target_modules)} not found in the model "
            f"(arm.lora.target_modules); its modules include: {', '.join(present[:12])}"
        ) from err
    narrowest = min(min(m.in_features, m.out_features) for m in adapted.modules()
                    if hasattr(m, "lora_A") and hasattr(m, "in_features"))
    if lora_cfg.r > narrowest:  # beyond the layer's rank: parameters that add nothing
        raise UserError(f"arm.lora.r={lora_cfg.r} is above {narrowest}, the narrowest "
                        "dimension of the layers it adapts; use a low rank (e.g. 8 or 16)")
    return adapted


def count_parameters(model: torch.nn.Module) -> tuple[int, int]:
    """(total, trainable) parameters, each tensor counted once (tied weights too)."""
    seen, total, trainable = set(), 0, 0
    for param in model.parameters():
        if id(param) in seen:
            continue
        seen.add(id(param))
        total += param.numel()
        trainable += param.numel() if param.requires_grad else 0
    return total, trainable
