"""CPU training steps with torch's dropout and with pvf's (`train/dropout.py`, the default).

    python bench/dropout.py [--rounds 7] [--steps 20] [--gpt2]

One training step (forward at answer positions, backward, fused AdamW) of `model=tiny`'s shape
(2 layers, width 128, vocabulary 2,048; with `--gpt2` also GPT-2 124M's) on a batch of 16
padded rows of 64 tokens, full fine-tuning and LoRA (the arm's settings: r=32, dropout 0.05,
every linear layer). The two dropouts alternate round by round in one process; the fastest
round of each counts (the median is printed too: this VM's rounds vary by 10-20%).
"""

import argparse
import statistics
import time

import torch
from common import machine, table
from omegaconf import OmegaConf
from transformers import GPT2Config, GPT2LMHeadModel

from prompt_vs_finetune.models import apply_lora
from prompt_vs_finetune.train.dropout import CpuDropout

SHAPES = {"tiny": dict(n_layer=2, n_head=4, n_embd=128, vocab_size=2048),
          "gpt2": dict(n_layer=12, n_head=12, n_embd=768, vocab_size=50257)}
LORA = {"r": 32, "alpha": 16, "dropout": 0.05, "target_modules": ["c_attn", "c_proj", "c_fc"]}


def training_step(shape: str, arm: str):
    torch.manual_seed(0)
    model = GPT2LMHeadModel(GPT2Config(**SHAPES[shape], activation_function="gelu_pytorch_tanh"))
    if arm == "lora":
        model = apply_lora(model, OmegaConf.create(LORA))
    model.train()
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad],
                                  fused=True)
    ids = torch.randint(0, SHAPES[shape]["vocab_size"], (16, 64))
    mask = torch.ones_like(ids)
    mask[::2, -12:] = 0  # every other row padded by 12 tokens
    decoder, head = model.get_decoder(), model.get_output_embeddings()

    def step():
        hidden = decoder(input_ids=ids, attention_mask=mask).last_hidden_state[:, -8:]
        head(hidden).logsumexp(-1).mean().backward()  # the answer's 8 positions
        optimizer.step()
        optimizer.zero_grad()

    holder = torch.nn.Module()
    holder.model, holder.device = model, torch.device("cpu")
    return step, holder


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--steps", type=int, default=20, help="steps per round (tiny)")
    parser.add_argument("--gpt2", action="store_true", help="GPT-2 124M too (2 steps a round)")
    args = parser.parse_args()
    rows = []
    for shape in ["tiny", *(["gpt2"] if args.gpt2 else [])]:
        steps = args.steps if shape == "tiny" else 2
        for arm in ("full_finetune", "lora"):
            step, holder = training_step(shape, arm)
            swap, times = CpuDropout(), {"torch": [], "pvf": []}
            for _ in range(3):
                step()
            for _ in range(args.rounds):
                for name in ("torch", "pvf"):
                    if name == "pvf":
                        swap.on_fit_start(None, holder)
                    start = time.perf_counter()
                    for _ in range(steps):
                        step()
                    times[name].append((time.perf_counter() - start) / steps * 1e3)
                swap.on_fit_end(None, holder)  # torch's dropout again for the next round
            best = {k: min(v) for k, v in times.items()}
            rows.append([shape, arm, best["torch"], best["pvf"],
                         f"{best['torch'] / best['pvf']:.2f}x",
                         f"{statistics.median(times['torch']):.4g} / "
                         f"{statistics.median(times['pvf']):.4g}"])
    print(f"{machine()}; batch 16 x 64 tokens; {args.rounds} rounds")
    print(table(["shape", "arm", "torch dropout ms/step", "pvf dropout ms/step", "speed-up",
                 "medians (torch / pvf)"], rows))


if __name__ == "__main__":
    main()
