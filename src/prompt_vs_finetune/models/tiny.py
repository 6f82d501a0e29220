"""`model=tiny`: a small GPT-2 with random weights and a byte-level BPE tokenizer trained on
the task's text, built locally and cached, so that every arm runs offline in seconds."""

import hashlib
import json
import logging
import os
import shutil
from collections.abc import Iterable
from pathlib import Path

import torch

from ..errors import UserError

log = logging.getLogger(__name__)

TINY_EOS = "<|endoftext|>"


def build_tiny(tiny_cfg, corpus: Iterable[str], cache_root: Path) -> str:
    """A small GPT-2 (random weights) + byte-level BPE trained on `corpus`, cached by content.

    The cache key hashes the corpus and the architecture, so a second run on the same task
    reuses the checkpoint and a different task gets its own tokenizer.
    """
    from tokenizers import ByteLevelBPETokenizer
    from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast

    texts = list(corpus)
    # initializer_range: GPT-2's 0.02 suits width 768; at width 128 it leaves the tied
    # embeddings so short that a frozen-base LoRA cannot make any answer token likely.
    arch = {k: tiny_cfg[k] for k in ("n_layer", "n_head", "n_embd", "n_positions",
                                     "vocab_size", "init_seed", "initializer_range")}
    digest = hashlib.sha256(json.dumps(arch, sort_keys=True).encode())
    for text in texts:
        digest.update(text.encode("utf-8", "replace") + b"\0")
    path = cache_root / digest.hexdigest()[:16]
    if (path / "config.json").is_file() and (path / "tokenizer.json").is_file():
        return str(path)
    if not texts:
        raise UserError("model=tiny needs the task's training text to train its tokenizer")

    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator(texts, vocab_size=arch["vocab_size"], min_frequency=2,
                            special_tokens=[TINY_EOS], show_progress=False)
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=bpe._tokenizer, bos_token=TINY_EOS,
                                        eos_token=TINY_EOS, unk_token=TINY_EOS,
                                        pad_token=TINY_EOS)
    eos_id = tokenizer.convert_tokens_to_ids(TINY_EOS)
    config = GPT2Config(vocab_size=len(tokenizer), n_positions=arch["n_positions"],
                        n_embd=arch["n_embd"], n_layer=arch["n_layer"], n_head=arch["n_head"],
                        initializer_range=arch["initializer_range"],
                        bos_token_id=eos_id, eos_token_id=eos_id, pad_token_id=eos_id)
    with torch.random.fork_rng():
        torch.manual_seed(arch["init_seed"])
        model = GPT2LMHeadModel(config)
    # Write to a private folder, then rename: parallel sweep jobs never see half a checkpoint.
    tmp = path.with_name(f"{path.name}.tmp{os.getpid()}")
    tokenizer.save_pretrained(tmp)
    model.save_pretrained(tmp)
    try:
        tmp.rename(path)
    except OSError:  # another job finished the same build first
        shutil.rmtree(tmp, ignore_errors=True)
    log.info("built tiny model at %s (%d parameters)", path, model.num_parameters())
    return str(path)
