"""Model x arm on intent_sample, offline: every local model as a scaled-down random copy of its
true architecture, and both API arms against the local stub server.

What the numbers mean: the local models have random weights, so prompting arms sit near chance
(1/8) and the fine-tuned arms show what a few epochs teach an architecture of that shape; the
API rows come from the stub, whose replies follow a keyword rule (below), not from Claude or
GPT, and whose usage counts words as tokens, priced at the real per-token list prices. The
table checks the plumbing end to end (same split, same prompts, one MLflow run per cell), not
the models.

    python bench/model_family.py [--epochs 10] [--seeds 0]
"""

import argparse
import os
import re
import tempfile
import time
from pathlib import Path

from common import config, machine, table  # first: puts tests/ (chat_stub) on sys.path

# isort: split
from chat_stub import StubAPI
from scaled_down import build_scaled_down

from prompt_vs_finetune import job
from prompt_vs_finetune.tasks import Task, job_splits

LOCAL = ["openai-gpt", "distilgpt2", "gpt2", "gpt2-medium", "gpt2-large", "gpt2-xl"]
ARMS = ["zero_shot", "few_shot", "full_finetune", "lora"]


def keyword_responder(task: Task):
    """The stub's rule: the label whose verbalization shares the most words with the last
    customer message in the prompt (ties: the first label), as a hosted model would reply."""
    words = {name: set(verbal.lower().split()) for name, verbal in task.labels.items()}

    def respond(system: str, prompt: str) -> str:
        query = prompt.rsplit("Customer message:", 1)[-1].lower()
        tokens = set(re.findall(r"[a-z]+", query))
        best = max(task.labels, key=lambda name: len(words[name] & tokens))
        return task.labels[best]

    return respond


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--out", default=str(Path(tempfile.gettempdir()) / "pvf-model-family"))
    args = parser.parse_args()
    out = Path(args.out)
    base = [f"paths.output_dir={out / 'runs'}", f"mlflow.tracking_uri=sqlite:///{out}/mlflow.db",
            f"paths.resume_dir={out / 'resume'}", "task=intent_sample",
            f"paths.cache_dir={out / 'cache'}"]
    cfg = config(*base)
    task, splits, _, corpus = job_splits(cfg.task, cfg.data_dir, cfg.train_size, cfg.test_size,
                                         cfg.data_seed)
    rows = []
    for name in LOCAL:
        path = out / "checkpoints" / name
        if not (path / "config.json").is_file():
            build_scaled_down(name, corpus, path, vocab_size=1024)
        for arm in ARMS:
            extra = {"full_finetune": ["arm.lr=1e-3", f"trainer.max_epochs={args.epochs}"],
                     "lora": ["arm.lr=3e-3", f"trainer.max_epochs={args.epochs}",
                              "arm.lora.r=32"],
                     "few_shot": ["arm.k=8"]}.get(arm, [])
            for seed in args.seeds:
                started = time.perf_counter()
                res = job.run(config(
                    *base, f"model={name}", f"model.name_or_path={path}", f"arm={arm}",
                    f"seed={seed}", f"paths.output_dir={out / 'runs' / name / arm / str(seed)}",
                    *extra))
                rows.append([name, arm, seed, f"{res['test/accuracy']:.3f}",
                             f"{res['cost/usd_per_1k_predictions']:.2e}",
                             f"{res['cost/total_params'] / 1e6:.2f}M",
                             f"{time.perf_counter() - started:.0f}"])
    os.environ.setdefault("ANTHROPIC_API_KEY", "stub-key")
    os.environ.setdefault("OPENAI_API_KEY", "stub-key")
    with StubAPI(keyword_responder(task), fail=(429, 500)) as stub:
        for name, url in (("claude", stub.url), ("openai_compatible", f"{stub.url}/v1")):
            for arm in ("zero_shot", "few_shot"):
                for seed in args.seeds:
                    started = time.perf_counter()
                    res = job.run(config(
                        *base, f"model={name}", f"model.api.base_url={url}", f"arm={arm}",
                        *(["arm.k=8"] if arm == "few_shot" else []), f"seed={seed}",
                        "model.api.cache=false"))
                    rows.append([f"{name} (stub)", arm, seed, f"{res['test/accuracy']:.3f}",
                                 f"{res['cost/usd_per_1k_predictions']:.2e}", "n/a",
                                 f"{time.perf_counter() - started:.0f}"])
    print(f"intent_sample: {len(splits['train'])} train, {len(splits['test'])} test, 8 labels "
          f"(chance 0.125); fine-tuning {args.epochs} epochs; {machine()}")
    print(table(["model", "arm", "seed", "accuracy", "USD / 1k pred.", "params", "seconds"],
                rows))


if __name__ == "__main__":
    main()
