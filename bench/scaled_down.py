"""Random-weight copies of real Hub architectures, scaled down, for offline runs.

Weights cannot always be downloaded (CI, air-gapped machines), but every model's own code path
(its module names for LoRA, its attention, its tokenizer type, its context length, its special
tokens) should still be exercised. This builds a checkpoint from the model's true `config.json`
(shipped under resources/hub_configs) with fewer layers and a narrower width, random weights,
and a tokenizer of the model's own type trained on the given text, and saves it where
`from_pretrained` loads it: `pvf model=gpt2-xl model.name_or_path=<the folder>`.
"""

import argparse
import json
from collections.abc import Iterable
from importlib.resources import files
from pathlib import Path

import torch
from tokenizers import pre_tokenizers, trainers
from transformers import AutoConfig, AutoModelForCausalLM

from prompt_vs_finetune.errors import UserError

HUB_CONFIGS = Path(str(files("prompt_vs_finetune") / "resources" / "hub_configs"))
END_OF_TEXT = "<|endoftext|>"


def hub_config(name: str) -> dict:
    """The true config.json of a model that conf/model/ names (openai-gpt, gpt2-xl, ...)."""
    path = HUB_CONFIGS / f"{name}.json"
    if not path.is_file():
        known = ", ".join(sorted(p.stem for p in HUB_CONFIGS.glob("*.json")))
        raise UserError(f"no shipped config for model '{name}'; known: {known}")
    return json.loads(path.read_text())


def scaled_config(config: dict, vocab_size: int, head_dim: int = 16, heads_per: int = 4,
                  layers_per: int = 12) -> dict:
    """The same architecture, 1/`layers_per` as deep with 1/`heads_per` of the heads of
    `head_dim` each: sizes keep their order (gpt2 < gpt2-medium < ... < gpt2-xl)."""
    n_head = max(1, config["n_head"] // heads_per)
    return {**config, "n_layer": max(1, config["n_layer"] // layers_per), "n_head": n_head,
            "n_embd": n_head * head_dim, "vocab_size": vocab_size}


def train_tokenizer(model_type: str, corpus: Iterable[str], vocab_size: int):
    """A tokenizer of the architecture's own type, with its merges learned from `corpus`:
    GPT-2's byte-level BPE with <|endoftext|>, or GPT-1's lower-cased BPE (BERT-style
    pre-tokenizer, `</w>` word ends, an <unk> token and no end-of-text token).

    The `tokenizers` BPE trainer breaks ties between equally frequent pairs in no fixed order,
    so two builds of GPT-1's tokenizer can differ in a few merges: build a copy once and
    reuse its folder, as with a downloaded model."""
    if model_type == "gpt2":
        from transformers import GPT2Tokenizer as Tokenizer

        special, extra = [END_OF_TEXT], {"initial_alphabet": pre_tokenizers.ByteLevel.alphabet()}
    elif model_type == "openai-gpt":
        from transformers import OpenAIGPTTokenizer as Tokenizer

        special, extra = ["<unk>"], {"end_of_word_suffix": "</w>"}
    else:
        raise UserError(f"no tokenizer recipe for model_type '{model_type}' (gpt2, openai-gpt)")
    tokenizer = Tokenizer()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, min_frequency=2,
                                  special_tokens=special, show_progress=False, **extra)
    tokenizer._tokenizer.train_from_iterator(list(corpus), trainer=trainer)
    return tokenizer


def build_scaled_down(name: str, corpus: Iterable[str], out_dir: str | Path,
                      vocab_size: int = 1024, seed: int = 0, **scale) -> Path:
    """Write a scaled-down random copy of model `name` (tokenizer trained on `corpus`)."""
    config = hub_config(name)
    tokenizer = train_tokenizer(config["model_type"], corpus, vocab_size)
    values = scaled_config(config, len(tokenizer), **scale)
    for key in ("bos_token_id", "eos_token_id"):  # GPT-2's 50256 is <|endoftext|>: keep that
        if key in values:
            values[key] = tokenizer.convert_tokens_to_ids(END_OF_TEXT)
    model_config = AutoConfig.for_model(values.pop("model_type"), **values)
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        model = AutoModelForCausalLM.from_config(model_config)
    out = Path(out_dir)
    tokenizer.save_pretrained(out)
    model.save_pretrained(out)
    return out


def main(argv: list[str] | None = None) -> None:
    """`python bench/scaled_down.py gpt2-xl out/ --text train.jsonl`."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", help="a name under resources/hub_configs (gpt2-xl, ...)")
    parser.add_argument("out_dir")
    parser.add_argument("--text", required=True, help="a JSONL file (e.g. a task's train "
                        "split) whose string fields train the tokenizer")
    parser.add_argument("--vocab-size", type=int, default=1024)
    args = parser.parse_args(argv)
    rows = [json.loads(line) for line in Path(args.text).read_text().splitlines() if line]
    corpus = (" ".join(str(v) for v in row.values()) for row in rows)
    print(build_scaled_down(args.model, corpus, args.out_dir, args.vocab_size))


if __name__ == "__main__":
    main()
