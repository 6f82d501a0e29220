"""CPU training's dropout (train/dropout.py): the same Bernoulli keep-mask and scale as torch's,
drawn from the job's seeded generator; SDPA attention written out gives SDPA's output; the
callback swaps every dropout of a plain and a LoRA model for the fit only."""

import types

import pytest
import torch
from peft import LoraConfig, get_peft_model
from transformers import GPT2Config, GPT2LMHeadModel
from transformers.integrations.sdpa_attention import sdpa_attention_forward

from prompt_vs_finetune.train import dropout
from prompt_vs_finetune.train.datamodule import pack_examples, pad_collate
from prompt_vs_finetune.train.module import model_inputs

from .test_training_loss import EXAMPLES  # prompt tokens, then the answer (with loss)


def test_the_mask_keeps_one_minus_p_and_scales_what_it_keeps():
    x = torch.ones(1000, 1000, requires_grad=True)
    y = dropout.fast_dropout(x, 0.1)
    kept = y != 0
    # 10^6 Bernoulli(0.9): the kept share is within 5 standard deviations (3e-4 each)
    assert kept.float().mean().item() == pytest.approx(0.9, abs=5 * 3e-4)
    torch.testing.assert_close(y[kept].detach(), torch.full((int(kept.sum()),), 1 / 0.9))
    y.sum().backward()  # the gradient goes through the kept elements, scaled alike
    torch.testing.assert_close(x.grad, y.detach())
    assert torch.all(dropout.fast_dropout(torch.ones(10), 1.0) == 0)


def test_the_mask_comes_from_torchs_seeded_generator():
    x = torch.ones(64, 64)
    torch.manual_seed(3)
    first = dropout.fast_dropout(x, 0.5)
    state = torch.get_rng_state()  # what a resume checkpoint saves
    after = dropout.fast_dropout(x, 0.5)
    torch.manual_seed(3)
    assert torch.equal(dropout.fast_dropout(x, 0.5), first)
    torch.set_rng_state(state)
    assert torch.equal(dropout.fast_dropout(x, 0.5), after)
    assert not torch.equal(first, after)


@pytest.mark.parametrize("mask", ["causal", "padding", "grouped"])
def test_attention_written_out_is_sdpas(monkeypatch, mask):
    torch.manual_seed(0)
    query, key, value = (torch.randn(2, 4, 6, 8) for _ in range(3))
    module = types.SimpleNamespace(is_causal=True, training=True)
    attention_mask = None
    if mask == "padding":  # SDPA's boolean mask: True takes part; the first row padded
        attention_mask = torch.ones(2, 1, 6, 6, dtype=torch.bool).tril()
        attention_mask[0, :, :, -2:] = False
    if mask == "grouped":  # two query heads per key/value head
        key, value, module.num_key_value_groups = key[:, :2], value[:, :2], 2
    expected, _ = sdpa_attention_forward(module, query, key, value, attention_mask)
    monkeypatch.setattr(dropout, "fast_dropout", lambda x, p: x)  # keep everything
    got, _ = dropout.attention(module, query, key, value, attention_mask, dropout=0.1)
    torch.testing.assert_close(got, expected, atol=1e-6, rtol=1e-5)


def tiny_gpt2(lora: bool):
    torch.manual_seed(0)
    config = GPT2Config(vocab_size=97, n_positions=64, n_embd=32, n_layer=2, n_head=2)
    model = GPT2LMHeadModel(config)
    if lora:
        model = get_peft_model(model, LoraConfig(r=4, target_modules=["c_attn", "c_fc"],
                                                 lora_dropout=0.1, init_lora_weights=False))
    return model


def fit_holder(model, device: str = "cpu"):
    """What the callback sees of the LightningModule: its modules and device."""
    holder = torch.nn.Module()
    holder.model = model
    holder.device = torch.device(device)
    return holder


def dropouts(model, kind) -> int:
    return sum(type(m) is kind for m in model.modules())


@pytest.mark.parametrize("packed", [False, True])
@pytest.mark.parametrize("lora", [False, True])
def test_the_fit_swaps_every_dropout_and_puts_it_back(monkeypatch, lora, packed):
    model = tiny_gpt2(lora)
    stock = dropouts(model, torch.nn.Dropout)
    assert stock == 7 + (4 if lora else 0)  # embeddings, 3 per block; LoRA's on 2 x 2 layers
    rows = pack_examples(EXAMPLES, 16, seed=0) if packed else EXAMPLES
    inputs = model_inputs(pad_collate(pad_id=0)(rows))
    with torch.no_grad():
        expected = model.eval()(**inputs).logits
    callback, holder = dropout.CpuDropout(), fit_holder(model.train())
    callback.on_fit_start(None, holder)
    assert dropouts(model, dropout.FastDropout) == stock
    assert dropouts(model, torch.nn.Dropout) == 0
    assert model.config._attn_implementation == dropout.ATTENTION
    torch.manual_seed(1)
    first = model(**inputs).logits
    torch.manual_seed(1)
    assert torch.equal(model(**inputs).logits, first)  # seeded: the same masks
    assert not torch.allclose(first, expected)  # and they drop something
    monkeypatch.setattr(dropout, "fast_dropout", lambda x, p: x)
    with torch.no_grad():  # with nothing dropped, the training forward is the stock one
        torch.testing.assert_close(model(**inputs).logits, expected, atol=1e-5, rtol=1e-4)
    callback.on_fit_end(None, holder)
    assert dropouts(model, torch.nn.Dropout) == stock
    assert model.config._attn_implementation == "sdpa"


def test_off_the_cpu_nothing_is_swapped():
    model = tiny_gpt2(lora=False)
    dropout.CpuDropout().on_fit_start(None, fit_holder(model, "meta"))
    assert dropouts(model, dropout.FastDropout) == 0
    assert model.config._attn_implementation == "sdpa"
