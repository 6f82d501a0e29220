"""Shared set-up for the benchmarks: a task config, its data, and a random-weight model of a
real architecture saved locally (weights cannot be downloaded here; speed does not depend on
them)."""

import platform
import sys
import tempfile
import time
from pathlib import Path

import datasets
import torch
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

ROOT = Path(__file__).parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "tests"))  # chat_stub: the loopback chat API the tests use too

from prompt_vs_finetune.cli import config_dir  # noqa: E402
from prompt_vs_finetune.config import fill_inherited  # noqa: E402
from prompt_vs_finetune.models.loading import build_tiny, load_model  # noqa: E402
from prompt_vs_finetune.scoring.logprobs import (  # noqa: E402
    PrefixCache,
    continuation_logprobs,
    shared_prefix_logprobs,
)
from prompt_vs_finetune.tasks import (  # noqa: E402
    Task,
    data_labels,
    load_splits,
    prompt_layout,
    select_demos,
    tokenizer_corpus,
)

datasets.disable_progress_bars()
SHARED = ROOT.parent / "shared" / "data"
ARCHS = {  # GPT-2 family shapes (n_layer, n_head, n_embd)
    "gpt2": (12, 12, 768), "gpt2-medium": (24, 16, 1024), "distilgpt2": (6, 12, 768),
    "tiny": (2, 4, 128),
}


def config(*overrides: str):
    with initialize_config_dir(config_dir(), version_base="1.3"):
        cfg = compose("config", overrides=["paths.output_dir=/tmp/pvf-bench", *overrides])
    fill_inherited(cfg)
    return cfg


def task_and_splits(cfg):
    splits = load_splits(cfg.task)[0]
    return cfg, Task.from_config(cfg.task, data_labels(splits)), splits


def banking77(data: Path | None = None, *overrides: str):
    data = Path(data or SHARED / "banking77")
    cfg = config("task=banking77", "task.label_field=category",
                 f"task.data_files={{train: {data / 'train.csv'}, test: {data / 'test.csv'}}}",
                 *overrides)
    return task_and_splits(cfg)


def dialogsum(data: Path | None = None, *overrides: str):
    data = Path(data or SHARED / "dialogsum")
    cfg = config("task=dialogsum", "task.splits.validation=null",
                 f"task.data_files={{train: {data / 'dev.jsonl'}, test: {data / 'test.jsonl'}}}",
                 *overrides)
    return task_and_splits(cfg)


def random_model(arch: str, corpus: list[str], vocab_size: int = 50257, cache: Path | None = None):
    """(model, tokenizer, path): `arch`'s shape with random weights and a byte-level BPE
    trained on `corpus`, saved to disk and loaded back through from_pretrained."""
    n_layer, n_head, n_embd = ARCHS[arch]
    spec = OmegaConf.create({"n_layer": n_layer, "n_head": n_head, "n_embd": n_embd,
                             "n_positions": 1024, "vocab_size": vocab_size, "init_seed": 0,
                             "initializer_range": 0.02})
    root = cache or Path(tempfile.gettempdir()) / "pvf-bench-models"
    path = true_vocab(build_tiny(spec, corpus, root), vocab_size)
    model, tokenizer = load_model(config("model=gpt2", f"model.name_or_path={path}").model,
                                  str(root))
    return model.eval(), tokenizer, path


def true_vocab(path: str, vocab_size: int) -> str:
    """The checkpoint at `path` with its embedding / output matrix grown to `vocab_size` rows:
    a BPE trained on one task's text stops far short of GPT-2's 50,257 tokens (3,284 on
    Banking77), and the output projection's cost (a third of a forward pass at 50,257) is
    part of what is measured. The extra rows are never produced by the tokenizer."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    grown = Path(f"{path}-vocab{vocab_size}")
    if not (grown / "config.json").is_file():
        model = AutoModelForCausalLM.from_pretrained(path)
        if model.config.vocab_size >= vocab_size:
            return path
        with torch.random.fork_rng():
            torch.manual_seed(0)
            model.resize_token_embeddings(vocab_size, mean_resizing=False)
        model.save_pretrained(grown)
        AutoTokenizer.from_pretrained(path).save_pretrained(grown)
    return str(grown)


REAL = {"smollm2": "model=smollm2"}  # pretrained models shipped offline (models/loading.py)


def real_model(arch: str):
    """(model, tokenizer, path) of a pretrained model a package ships: SmolLM2-135M-Instruct
    (30 layers of width 576, 9 heads, 3 key-value heads, 49,152-token vocabulary, tied
    embeddings), dequantized once into the cache as a job does; `path` is that checkpoint."""
    from prompt_vs_finetune.models.loading import gguf_checkpoint

    cfg = config(REAL[arch])
    cache = Path(cfg.paths.cache_dir)
    path = gguf_checkpoint(cfg.model.gguf, cache / "gguf")
    model, tokenizer = load_model(cfg.model, str(cache))
    return model.eval(), tokenizer, path


def task_and_model(load_task, data, arch: str):
    """(task, splits, model on the best device, tokenizer, checkpoint path) for a benchmark:
    `arch` is a shape with random weights (and a tokenizer trained on the task's text, as a
    job's is), or a pretrained model (REAL: its own tokenizer)."""
    _, task, splits = load_task(data)
    if arch in REAL:
        model, tokenizer, path = real_model(arch)
    else:
        model, tokenizer, path = random_model(arch, tokenizer_corpus(task, splits))
    model.to("cuda" if torch.cuda.is_available() else "cpu")
    return task, splits, model, tokenizer, path


def weights(arch: str) -> str:
    return "pretrained weights" if arch in REAL else "random weights"


def scoring_contexts(task, splits, tokenizer, n: int, k: int):
    """(encoder, prompt ids of the first `n` test examples after a fixed shuffle, sorted by
    length) with `k` class-balanced demos: the job's own layout (`prompt_layout`)."""
    test = splits["test"].shuffle(seed=0).select(range(n))
    demos = select_demos(splits["train"], k, "class_balanced", seed=0, order_seed=0)
    encoder, _ = prompt_layout(task, tokenizer, 1024, None, demos, test["text"])
    return encoder, sorted((encoder.prompt_ids(t) for t in test["text"]), key=len)


def timed_scoring(model, contexts: list[list[int]], choices: list[list[int]], pad_id: int,
                  per_batch: int, share: bool = True, plain_batch: int = 64):
    """Seconds to score every context x choice as RankClassifier.step does it (shared-prefix
    or plain), and the log-likelihoods [n_contexts, n_choices]."""
    cache, out = PrefixCache(), []
    start = time.perf_counter()
    for i in range(0, len(contexts), per_batch):
        chunk = contexts[i:i + per_batch]
        if share:
            scores = shared_prefix_logprobs(model, chunk, choices, pad_id, cache)
        else:
            scores = continuation_logprobs(model, [c for c in chunk for _ in choices],
                                           choices * len(chunk), pad_id, plain_batch)
        out.append(scores.logprob.view(len(chunk), len(choices)))
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return time.perf_counter() - start, torch.cat(out)


def machine() -> str:
    device = (torch.cuda.get_device_name() if torch.cuda.is_available()
              else f"CPU ({platform.processor() or platform.machine()}, "
                   f"{torch.get_num_threads()} threads)")
    return f"{device}, torch {torch.__version__}"


def table(headers: list[str], rows: list[list]) -> str:
    cells = [[f"{c:.4g}" if isinstance(c, float) else str(c) for c in row] for row in rows]
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in cells])
