"""Rank-classification throughput: pvf's shared-prefix scoring against lm-evaluation-harness
(and, with --plain, against one plain forward pass per label).

    python bench/scoring.py [--data ../shared/data/banking77] [--n 16] [--arch gpt2]
        [--peer-batch-sizes 16 64] [--plain]

Banking77 (77 labels), GPT-2 124M architecture with random weights (`--arch smollm2`: the
pretrained SmolLM2-135M-Instruct), zero-shot and 8-shot. The peer is lm-evaluation-harness's
`hf` backend (`pip install -e ".[bench]"`) loading the same checkpoint folder, asked for the
same rows as a multiple-choice task asks: one loglikelihood request (context, " label") per
example x label, in pvf's tokens (see `peer_scoring`). It runs at each of --peer-batch-sizes
and its best counts. Printed: examples/s of each side on the same examples in one process,
the ratio, the largest absolute difference between the per-choice log-likelihoods, and on
how many rows the peer's own tokenizing of the decoded text would have given pvf's tokens.
"""

import argparse
import time

import torch
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
    parser.add_argument("--peer-batch-sizes", type=int, nargs="*", default=[16, 64],
                        help="lm-evaluation-harness batch sizes to try (none: no peer)")
    parser.add_argument("--plain", action="store_true", help="also time pvf's plain path")
    parser.add_argument("--rounds", type=int, default=3, help="pvf's rounds; the fastest counts")
    args = parser.parse_args()

    task, splits, model, tokenizer, path = task_and_model(banking77, args.data, args.arch)
    peer = harness(path, tokenizer) if args.peer_batch_sizes else None
    rows = []
    for k in args.shots:
        encoder, contexts = scoring_contexts(task, splits, tokenizer, args.n, k)
        run = (encoder.choice_ids, tokenizer.pad_token_id, args.examples_per_batch)
        timed_scoring(model, contexts[:1], *run)  # warm-up
        seconds, ours = min((timed_scoring(model, contexts, *run) for _ in range(args.rounds)),
                            key=lambda timed: timed[0])
        rate = args.n / seconds
        row = [f"{k}-shot", round(sum(map(len, contexts)) / len(contexts)), args.n, rate]
        if args.plain:
            timed_scoring(model, contexts[:1], *run, False, args.plain_batch)
            plain_s, plain = timed_scoring(model, contexts, *run, False, args.plain_batch)
            row += [args.n / plain_s, f"{plain_s / seconds:.1f}x",
                    f"{(plain - ours).abs().max().item():.2e}"]
        if peer is not None:
            best, theirs, same = peer_scoring(peer, tokenizer, contexts, encoder.choice_ids,
                                              args.peer_batch_sizes)
            diff = (theirs - ours).abs()
            row += [", ".join(f"{b}: {args.n / s:.4g}" for b, s in best.items()),
                    f"{min(best.values()) / seconds:.1f}x", f"{diff.max().item():.2e}",
                    f"{int(same.sum())}/{same.numel()}"]
        rows.append(row)
    headers = ["prompt", "mean prompt tokens", "examples", "pvf ex/s"]
    if args.plain:
        headers += ["plain ex/s", "pvf / plain", "max |Δ| vs plain"]
    if peer is not None:
        headers += ["lm-eval ex/s by batch size", "pvf / best lm-eval", "max |Δ log-lik|",
                    "rows its tokenizer would encode alike"]
    print(f"# scoring: Banking77 ({len(task.labels)} labels), {args.arch} "
          f"({weights(args.arch)}), {machine()}")
    print(table(headers, rows))


def harness(path: str, tokenizer):
    """lm-evaluation-harness's `hf` model on the same checkpoint folder, float32 on the same
    device; pvf's tokenizer object, so that a model without a tokenizer file (GGUF) loads."""
    from lm_eval.models.huggingface import HFLM

    device = "cuda" if torch.cuda.is_available() else "cpu"
    return HFLM(pretrained=path, tokenizer=tokenizer, device=device, dtype="float32",
                batch_size=1)


def peer_scoring(peer, tokenizer, contexts, choices, batch_sizes):
    """({batch size: seconds}, log-likelihoods [n_contexts, n_choices], mask of the rows the
    peer's own tokenizing would give pvf's tokens): one request per context x choice, as a
    harness task builds them from a document's text and its choices' texts. The peer scores
    pvf's token ids (`_loglikelihood_tokens`, what its `loglikelihood` calls once it has
    tokenized), so both sides score the same sequences: re-encoding the text merges tokens
    across the pieces pvf encodes apart (demos, separators), which would change the numbers
    compared. Its tokenizing (well under 1% of its time here) is left out of its time."""
    texts = [tokenizer.decode(c) for c in contexts]
    labels = [tokenizer.decode(c) for c in choices]
    requests = [((t, lab), c, ch) for t, c in zip(texts, contexts, strict=True)
                for lab, ch in zip(labels, choices, strict=True)]
    seconds, result = {}, None
    for size in batch_sizes:
        peer.batch_size_per_gpu = size  # what HFLM(batch_size=size) sets
        peer._loglikelihood_tokens(requests[:len(labels)], disable_tqdm=True)  # warm-up
        start = time.perf_counter()
        result = peer._loglikelihood_tokens(requests, disable_tqdm=True)
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        seconds[size] = time.perf_counter() - start
    scores = torch.tensor([r[0] for r in result]).view(len(contexts), len(choices))
    same = torch.tensor([[peer._encode_pair(t, lab) == (c, ch)
                          for ch, lab in zip(choices, labels, strict=True)]
                         for t, c in zip(texts, contexts, strict=True)])
    return seconds, scores, same


if __name__ == "__main__":
    main()
