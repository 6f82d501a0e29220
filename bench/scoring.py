"""Rank-classification throughput: shared-prefix scoring vs one plain forward pass per label.

    python bench/scoring.py [--data ../shared/data/banking77] [--n 16] [--arch gpt2]

Banking77 (77 labels), GPT-2 124M architecture with random weights (`--arch smollm2`: the
pretrained SmolLM2-135M-Instruct), zero-shot and 8-shot:
examples/s of both paths on the same examples in one process, their ratio, and the largest
absolute difference between their label log-likelihoods.
"""

import argparse

from common import (
    banking77,
    machine,
    scoring_contexts,
    table,
    task_and_model,
    timed_scoring,
    weights,
)


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
    rows = []
    for k in args.shots:
        encoder, contexts = scoring_contexts(task, splits, tokenizer, args.n, k)
        timings = {}
        for share in (True, False):
            run = (encoder.choice_ids, tokenizer.pad_token_id, args.examples_per_batch, share,
                   args.plain_batch)
            timed_scoring(model, contexts[:1], *run)  # warm-up
            timings[share] = timed_scoring(model, contexts, *run)
        prompt_tokens = sum(map(len, contexts)) / len(contexts)
        diff = (timings[True][1] - timings[False][1]).abs().max().item()
        shared_rate, plain_rate = args.n / timings[True][0], args.n / timings[False][0]
        rows.append([f"{k}-shot", round(prompt_tokens), len(task.labels), args.n, plain_rate,
                     shared_rate, f"{shared_rate / plain_rate:.1f}x", f"{diff:.2e}"])
    print(f"# scoring: Banking77, {args.arch} ({weights(args.arch)}), {machine()}")
    print(table(["prompt", "mean prompt tokens", "labels", "examples", "plain ex/s",
                 "shared-prefix ex/s", "speed-up", "max |Δ log-lik|"], rows))


if __name__ == "__main__":
    main()
