"""Rank-classification throughput: shared-prefix scoring vs one plain forward pass per label.

    python bench/scoring.py [--data ../shared/data/banking77] [--n 16] [--arch gpt2]

Banking77 (77 labels), GPT-2 124M architecture with random weights, zero-shot and 8-shot:
examples/s of both paths on the same examples in one process, their ratio, and the largest
absolute difference between their label log-likelihoods.
"""

import argparse
import time

import torch
from common import banking77, machine, table, task_and_model

from prompt_vs_finetune.prompts import PromptEncoder, select_demos
from prompt_vs_finetune.scoring import PrefixCache, continuation_logprobs, shared_prefix_logprobs


def timed_scoring(share: bool, model, contexts: list[list[int]], choices: list[list[int]],
                  pad_id: int, per_batch: int, plain_batch: int) -> tuple[float, torch.Tensor]:
    """Seconds to score every context x choice, as RankClassifier.step does it, and the
    log-likelihoods [n_contexts * n_choices]."""
    cache, out = PrefixCache(), []
    start = time.perf_counter()
    for i in range(0, len(contexts), per_batch):
        chunk = contexts[i:i + per_batch]
        if share:
            scores = shared_prefix_logprobs(model, chunk, choices, pad_id, cache)
        else:
            scores = continuation_logprobs(model, [c for c in chunk for _ in choices],
                                           choices * len(chunk), pad_id, plain_batch)
        out.append(scores.logprob)
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return time.perf_counter() - start, torch.cat(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=None, help="folder with Banking77 train.csv/test.csv")
    parser.add_argument("--n", type=int, default=16, help="test examples")
    parser.add_argument("--arch", default="gpt2")
    parser.add_argument("--shots", type=int, nargs="+", default=[0, 8])
    parser.add_argument("--examples-per-batch", type=int, default=8)
    parser.add_argument("--plain-batch", type=int, default=64, help="sequences per plain pass")
    args = parser.parse_args()

    task, splits, model, tokenizer, _ = task_and_model(banking77, args.data, args.arch)
    test = splits["test"].shuffle(seed=0).select(range(args.n))
    rows = []
    for k in args.shots:
        encoder = PromptEncoder(tokenizer, task, 1024)
        demos = select_demos(splits["train"], k, "class_balanced", seed=0, order_seed=0)
        encoder.set_demos(demos, max(len(encoder.encode(task.prompt(t))) for t in test["text"]))
        contexts = sorted((encoder.prompt_ids(t) for t in test["text"]), key=len)
        timings = {}
        for share in (True, False):
            run = (share, model, contexts, encoder.choice_ids, tokenizer.pad_token_id,
                   args.examples_per_batch, args.plain_batch)
            timed_scoring(*run[:2], contexts[:1], *run[3:])  # warm-up
            timings[share] = timed_scoring(*run)
        prompt_tokens = sum(map(len, contexts)) / len(contexts)
        diff = (timings[True][1] - timings[False][1]).abs().max().item()
        shared_rate, plain_rate = args.n / timings[True][0], args.n / timings[False][0]
        rows.append([f"{k}-shot", round(prompt_tokens), len(task.labels), args.n, plain_rate,
                     shared_rate, f"{shared_rate / plain_rate:.1f}x", f"{diff:.2e}"])
    print(f"# scoring: Banking77, {args.arch} architecture (random weights), {machine()}")
    print(table(["prompt", "mean prompt tokens", "labels", "examples", "plain ex/s",
                 "shared-prefix ex/s", "speed-up", "max |Δ log-lik|"], rows))


if __name__ == "__main__":
    main()
