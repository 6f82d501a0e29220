"""Summarization throughput: pvf's batched generation vs a per-example pipeline loop.

    python bench/generation.py [--data ../shared/data/dialogsum] [--n 32] [--arch gpt2]

DialogSum test dialogues, GPT-2 124M architecture with random weights (`--arch smollm2`: the
pretrained SmolLM2-135M-Instruct), greedy decoding, the
same prompts and `max_new_tokens` on both sides (`min_new_tokens` too: a random model would
otherwise stop at random, and both sides must do the same work). pvf: prompts sorted by
length, batches within a token budget, each prompt prefilled alone (no padding) and the batch
decoded together from one preallocated cache, one `generate` per batch; the model as a job
loads it (GPT-2's activation as one fused kernel). Baseline: the checkpoint as
`from_pretrained` loads it, `pipeline("text-generation")` called once per example, as a user
loop would. Also: how many outputs are token-identical.
"""

import argparse
import time

import torch
from common import dialogsum, machine, table, task_and_model, weights
from transformers import AutoModelForCausalLM, pipeline

from prompt_vs_finetune.scoring.generation import generate
from prompt_vs_finetune.tasks import prompt_layout
from prompt_vs_finetune.train.datamodule import budget_batches


def synced_seconds(start: float) -> float:
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=None, help="folder with DialogSum dev/test.jsonl")
    parser.add_argument("--n", type=int, default=32, help="test dialogues")
    parser.add_argument("--arch", default="gpt2")
    parser.add_argument("--max-new-tokens", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=32)  # conf/decoding/_base.yaml
    parser.add_argument("--max-batch-tokens", type=int, default=16384)
    args = parser.parse_args()

    task, splits, model, tokenizer, path = task_and_model(dialogsum, args.data, args.arch)
    device = model.device
    test = splits["test"].shuffle(seed=0).select(range(args.n))
    encoder, _ = prompt_layout(task, tokenizer, 1024, args.max_new_tokens, [], test["text"])
    prompts = [encoder.prompt_ids(text) for text in test["text"]]
    kwargs = {"max_new_tokens": args.max_new_tokens, "min_new_tokens": args.max_new_tokens,
              "do_sample": False, "num_beams": 1, "eos_token_id": tokenizer.eos_token_id,
              "pad_token_id": tokenizer.pad_token_id}

    generate(model, prompts[:1], kwargs)  # warm-up
    order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]))
    batches = budget_batches([len(prompts[i]) + args.max_new_tokens for i in order],
                             args.batch_size, args.max_batch_tokens)
    ours: dict[int, list[int]] = {}
    start = time.perf_counter()
    for batch in batches:
        rows = [order[b] for b in batch]
        for i, tokens in zip(rows, generate(model, [prompts[i] for i in rows], kwargs),
                             strict=True):
            ours[i] = tokens
    batched = synced_seconds(start)

    stock = AutoModelForCausalLM.from_pretrained(path).to(device).eval()
    generator = pipeline("text-generation", model=stock, tokenizer=tokenizer, device=device)
    texts = [tokenizer.decode(p) for p in prompts]
    generator(texts[0], return_full_text=False, **kwargs)  # warm-up
    theirs = []
    start = time.perf_counter()
    for text in texts:
        out = generator(text, return_full_text=False, **kwargs)[0]["generated_text"]
        theirs.append(out)
    looped = synced_seconds(start)

    # the ceiling: were decoding free, a method still prefills every prompt once, at best
    # one at a time (no padding); the loop cannot beat looped / that
    start = time.perf_counter()
    with torch.no_grad():
        for p in prompts:
            model(input_ids=torch.tensor([p], device=device), logits_to_keep=1)
    prefill = synced_seconds(start)
    ceiling = looped / prefill

    same = sum(tokenizer.decode(ours[i]) == theirs[i] for i in range(len(prompts)))
    mean_prompt = sum(map(len, prompts)) / len(prompts)
    print(f"# generation: DialogSum test, {args.n} dialogues (mean prompt {mean_prompt:.0f} "
          f"tokens), {args.max_new_tokens} new tokens each, greedy, {args.arch} "
          f"({weights(args.arch)}), {machine()}")
    print(table(["method", "summaries/s", "seconds", "identical outputs"], [
        ["pipeline('text-generation') per example", args.n / looped, looped, "-"],
        [f"pvf batched (<= {args.batch_size} prompts and {args.max_batch_tokens} tokens, "
         "sorted; prompts prefilled one by one, decoded together from a static cache)",
         args.n / batched, batched, f"{same}/{args.n}"],
        ["speed-up", f"{looped / batched:.1f}x", "", ""],
        ["ceiling (loop time / unpadded prefill alone)", f"{ceiling:.1f}x",
         f"{prefill:.2f}", ""],
        ["fraction of the ceiling reached", f"{looped / batched / ceiling:.0%}", "", ""],
    ]))


if __name__ == "__main__":
    main()
