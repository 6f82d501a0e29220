"""The references' log-likelihood (summarization perplexity): one sequence per (prompt,
reference) pair, as before, vs each prompt run once for all its references.

    python bench/references.py [--model smollm2] [--k 0] [--repeats 3]

The shipped summary_sample test split (40 DialogSum dialogues, three references each), the
real model (`model=smollm2`, loaded as a job loads it) or a random-weight GPT-2 shape
(`--model gpt2`), the default template, `k` demonstrations before every prompt. Both sides
score the same pairs; prints seconds (best of `repeats`), tokens run and the largest
difference between the two sets of log-likelihoods.
"""

import argparse
import time

import torch
from common import ROOT, machine, table, task_and_model  # noqa: F401  (ROOT: sys.path)
from hydra import compose, initialize_config_dir

from prompt_vs_finetune.cli import config_dir
from prompt_vs_finetune.config import fill_inherited
from prompt_vs_finetune.models.loading import load_model
from prompt_vs_finetune.scoring import Summarizer
from prompt_vs_finetune.scoring.logprobs import continuation_logprobs
from prompt_vs_finetune.tasks import job_splits, prompt_layout, select_demos


def smollm2(k: int):
    with initialize_config_dir(config_dir(), version_base="1.3"):
        cfg = compose("config", overrides=["model=smollm2", "task=summary_sample",
                                           "paths.output_dir=/tmp/pvf-bench",
                                           "mlflow.tracking_uri=sqlite:////tmp/pvf-bench.db"])
    fill_inherited(cfg)
    task, splits, _, corpus = job_splits(cfg.task, cfg.data_dir, cfg.train_size, cfg.test_size,
                                         cfg.data_seed)
    model, tokenizer = load_model(cfg.model, cfg.paths.cache_dir, corpus)
    return cfg, task, splits, model.eval(), tokenizer


def best_of(repeats: int, fn):
    seconds, result = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        seconds.append(time.perf_counter() - start)
    return min(seconds), result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2", choices=["smollm2", "gpt2"])
    parser.add_argument("--k", type=int, default=0, help="demonstrations before every prompt")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    torch.set_grad_enabled(False)

    cfg, task, splits, model, tokenizer = smollm2(args.k)
    if args.model == "gpt2":  # the same task and prompts, a random GPT-2 124M of its own
        task, splits, model, tokenizer, _ = task_and_model(lambda *_: (None, task, splits), None,
                                                           "gpt2")
    demos = select_demos(splits["train"], args.k, "random", seed=0)
    test = splits["test"]
    encoder, _ = prompt_layout(task, tokenizer, 2048, 64, demos, test["text"])
    scorer = Summarizer(encoder, cfg.decoding, score_batch_size=64, seed=0)
    refs = list(test["references"])
    contexts = [encoder.prompt_ids(text) for text in test["text"]]
    ref_ids = [[encoder.encode(task.target(ref)) for ref in rs] for rs in refs]
    pairs = [(c, r) for c, rs in zip(contexts, ref_ids, strict=True) for r in rs]

    def plain():
        return continuation_logprobs(model, [p[0] for p in pairs], [p[1] for p in pairs],
                                     pad_id=tokenizer.pad_token_id)

    def shared():
        scorer.start()
        return scorer._reference_logprobs(model, contexts, ref_ids)

    shared()  # warm-up
    t_plain, a = best_of(args.repeats, plain)
    t_shared, b = best_of(args.repeats, shared)
    print(machine())
    print(f"{args.model}, {len(test)} prompts, {len(pairs)} references, k={args.k}")
    print(table(["path", "seconds", "tokens run", "speed-up"], [
        ["a sequence per (prompt, reference)", f"{t_plain:.2f}", a.tokens_processed, "1.00x"],
        ["each prompt once for its references", f"{t_shared:.2f}", b.tokens_processed,
         f"{t_plain / t_shared:.2f}x"]]))
    print(f"largest log-likelihood difference: {float((a.logprob - b.logprob).abs().max()):.2e}")


if __name__ == "__main__":
    main()
