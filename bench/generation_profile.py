"""Where batched generation time goes: prefill vs decode, per batch of bench/generation.py.

    python bench/generation_profile.py [--n 32]

The same DialogSum prompts and token-budgeted batches as bench/generation.py; prefill is one
forward pass over a batch's padded prompts, decode is the rest of its `generate` call.
"""

import argparse
import time

import torch
from common import dialogsum, machine, table, task_and_model

from prompt_vs_finetune.scoring.generation import generate
from prompt_vs_finetune.scoring.logprobs import left_pad
from prompt_vs_finetune.tasks import prompt_layout
from prompt_vs_finetune.train.datamodule import budget_batches

NEW = 64


def seconds(fn, *args, **kwargs) -> float:
    start = time.perf_counter()
    fn(*args, **kwargs)
    return time.perf_counter() - start


@torch.no_grad()
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=32)
    args = parser.parse_args()
    task, splits, model, tok, _ = task_and_model(dialogsum, None, "gpt2")
    test = splits["test"].shuffle(seed=0).select(range(args.n))
    encoder, _ = prompt_layout(task, tok, 1024, NEW, [], test["text"])
    prompts = sorted((encoder.prompt_ids(t) for t in test["text"]), key=len)
    kwargs = {"max_new_tokens": NEW, "min_new_tokens": NEW, "do_sample": False, "num_beams": 1,
              "eos_token_id": tok.eos_token_id, "pad_token_id": tok.pad_token_id}
    generate(model, prompts[:1], kwargs)  # warm-up
    rows = []
    for batch in budget_batches([len(p) + NEW for p in prompts], 16, 4096):
        chunk = [prompts[i] for i in batch]
        ids, mask = left_pad(chunk, tok.pad_token_id)
        prefill = seconds(model, input_ids=ids, attention_mask=mask, logits_to_keep=1)
        total = seconds(generate, model, chunk, kwargs)
        rows.append([len(chunk), ids.shape[1], sum(map(len, chunk)), prefill, total - prefill,
                     (total - prefill) / NEW * 1000])
    alone = seconds(lambda: [model(torch.tensor([p]), logits_to_keep=1) for p in prompts])
    print(f"# generation profile: {args.n} DialogSum prompts, {NEW} new tokens, {machine()}")
    print(table(["batch", "width", "real tokens", "prefill s", "decode s", "ms per decode step"],
                rows))
    print(f"prefill one prompt at a time: {alone:.2f} s; in the padded batches: "
          f"{sum(r[3] for r in rows):.2f} s")


if __name__ == "__main__":
    main()
