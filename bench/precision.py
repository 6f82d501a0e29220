"""Rank-classification scoring at reduced precision: float32, bfloat16, float16 and int8.

    python bench/precision.py [--data ../shared/data/banking77] [--n 16] [--arch gpt2]

Banking77 (77 labels), GPT-2 124M architecture with random weights, shared-prefix scoring as
RankClassifier does it (length_norm none), the same examples in every dtype, one process: for
each `inference_dtype` the model is cast (to_inference_dtype, as a job does before its test),
then timed. Columns: examples/s, the weights' memory as scored (weight_memory_mb), the largest
|Δ log-likelihood| of any example x label vs float32, and how often the predicted label (the
argmax over the 77) is float32's. Random weights give near-uniform label scores, so argmax
agreement here is a harsh test of numerical error; a pretrained model's margins are wider.
"""

import argparse
import copy
import time

from common import banking77, machine, scoring_contexts, table, task_and_model, timed_scoring

from prompt_vs_finetune.models.precision import (
    INFERENCE_DTYPES,
    to_inference_dtype,
    weight_memory_mb,
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=None, help="folder with Banking77 train.csv/test.csv")
    parser.add_argument("--n", type=int, default=16, help="test examples")
    parser.add_argument("--arch", default="gpt2")
    parser.add_argument("--shots", type=int, default=0)
    parser.add_argument("--examples-per-batch", type=int, default=8)
    parser.add_argument("--dtypes", nargs="+", default=list(INFERENCE_DTYPES))
    args = parser.parse_args()

    task, splits, model, tokenizer, _ = task_and_model(banking77, args.data, args.arch)
    device = next(model.parameters()).device
    encoder, contexts = scoring_contexts(task, splits, tokenizer, args.n, args.shots)
    run = (encoder.choice_ids, tokenizer.pad_token_id, args.examples_per_batch)

    rows, reference = [], None
    for name in ["float32", *(d for d in args.dtypes if d != "float32")]:
        start = time.perf_counter()
        cast = to_inference_dtype(copy.deepcopy(model), name, device)
        cast_s = time.perf_counter() - start
        timed_scoring(cast, contexts[:1], *run)  # warm-up
        seconds, logprob = timed_scoring(cast, contexts, *run)
        if reference is None:
            reference = logprob
        diff = (logprob - reference).abs().max().item()
        agree = (logprob.argmax(-1) == reference.argmax(-1)).float().mean().item()
        rows.append([name, args.n / seconds, weight_memory_mb(cast), f"{cast_s:.2f}",
                     f"{diff:.3g}", f"{agree:.0%}"])
        del cast
    prompt_tokens = sum(map(len, contexts)) / len(contexts)
    print(f"# precision: Banking77 {args.shots}-shot ({round(prompt_tokens)} prompt tokens, "
          f"{len(task.labels)} labels, {args.n} examples), {args.arch} architecture (random "
          f"weights, vocabulary {model.config.vocab_size}), shared-prefix scoring, {machine()}")
    print(table(["inference_dtype", "ex/s", "weights MiB", "cast s", "max |Δ log-lik|",
                 "argmax = float32"], rows))


if __name__ == "__main__":
    main()
