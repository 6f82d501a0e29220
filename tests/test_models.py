import subprocess
import sys

import pytest
import torch

from prompt_vs_finetune.errors import UserError
from prompt_vs_finetune.models import loading as models
from prompt_vs_finetune.models.loading import apply_lora, build_tiny, count_parameters, load_model

from .conftest import compose_config

CORPUS = ["my card was charged twice", "cancel my subscription now", "where is my package"] * 20


def tiny_cfg(tmp_path):
    cfg = compose_config(tmp_path, "model=tiny").model
    cfg.tiny.update(n_layer=1, n_embd=32, n_head=2, vocab_size=300)
    return cfg


def test_tiny_is_built_once_and_reused(tmp_path):
    cfg = tiny_cfg(tmp_path)
    first = build_tiny(cfg.tiny, CORPUS, tmp_path / "cache")
    stamp = (tmp_path / "cache").stat().st_mtime_ns
    assert build_tiny(cfg.tiny, CORPUS, tmp_path / "cache") == first
    assert len(list((tmp_path / "cache").iterdir())) == 1
    assert (tmp_path / "cache").stat().st_mtime_ns == stamp
    assert build_tiny(cfg.tiny, CORPUS + ["new text"], tmp_path / "cache") != first


def test_tiny_loads_through_from_pretrained_with_a_pad_token(tmp_path):
    model, tokenizer = load_model(tiny_cfg(tmp_path), str(tmp_path), CORPUS)
    assert tokenizer.pad_token_id == tokenizer.eos_token_id == model.config.pad_token_id
    assert model.config.n_layer == 1
    assert tokenizer.decode(tokenizer("my card")["input_ids"]) == "my card"


def test_hub_model_offline_gives_one_line_error(tmp_path, monkeypatch):
    cfg = compose_config(tmp_path, "model=gpt2").model
    with pytest.raises(UserError) as err:
        load_model(cfg, str(tmp_path))
    message = str(err.value)
    assert "\n" not in message and "model=tiny" in message and "'gpt2'" in message
    # without HF_HUB_OFFLINE, an unreachable Hub is detected before any retry loop
    monkeypatch.delenv("HF_HUB_OFFLINE")
    monkeypatch.setattr(models, "hub_reachable", lambda: False)
    with pytest.raises(UserError, match="no network"):
        load_model(cfg, str(tmp_path))


def test_missing_local_model_path(tmp_path):
    cfg = compose_config(tmp_path, f"model.name_or_path={tmp_path}/nowhere").model
    with pytest.raises(UserError, match="local model path does not exist"):
        load_model(cfg, str(tmp_path))


def test_lora_trains_only_adapter_weights(tmp_path):
    cfg = compose_config(tmp_path, "model=tiny", "arm=lora")
    model, tokenizer = load_model(tiny_cfg(tmp_path), str(tmp_path), CORPUS)
    model = apply_lora(model, cfg.arm.lora).train()
    total, trainable = count_parameters(model)
    assert 0 < trainable < total
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    batch = tokenizer(["my card was charged twice"], return_tensors="pt")
    model(**batch, labels=batch["input_ids"]).loss.backward()
    optimizer.step()
    for name, param in model.named_parameters():
        changed = not torch.equal(before[name], param.detach())
        assert changed == ("lora_B" in name or "lora_A" in name), name
    assert any("lora_B" in n for n, p in model.named_parameters() if p.requires_grad)


def test_lora_with_absent_target_modules(tmp_path):
    cfg = compose_config(tmp_path, "model=tiny", "arm=lora", "arm.lora.target_modules=[q_proj]")
    model, _ = load_model(tiny_cfg(tmp_path), str(tmp_path), CORPUS)
    with pytest.raises(UserError, match=r"LoRA target modules \['q_proj'\] not found.*c_attn"):
        apply_lora(model, cfg.arm.lora)


def test_an_encoder_checkpoint_is_not_taken_for_a_causal_lm(tmp_path):
    """BERT loads through AutoModelForCausalLM (BertLMHeadModel) with a fresh head; a BERT
    saved as BertModel must be refused, not scored."""
    from transformers import BertConfig, BertModel

    BertModel(BertConfig(vocab_size=50, hidden_size=16, num_hidden_layers=1,
                         num_attention_heads=2, intermediate_size=16)).save_pretrained(
        tmp_path / "bert")
    cfg = compose_config(tmp_path, f"model.name_or_path={tmp_path}/bert").model
    with pytest.raises(UserError, match=r"is not a causal language model \(it is a BertModel\)"):
        load_model(cfg, str(tmp_path))


def test_a_command_imports_only_what_it_needs():
    """pvf-prepare's modules import no torch; a prompting job's no peft (LoRA imports it where
    it adapts a model, a fit with its learning-rate schedule): seconds of every cold start."""
    script = ("import sys\n"
              "import prompt_vs_finetune.cli, prompt_vs_finetune.config, prompt_vs_finetune.tasks\n"
              "import prompt_vs_finetune.tasks.splits\n"
              "print(sorted({'torch', 'transformers', 'peft'} & set(sys.modules)))\n"
              "import prompt_vs_finetune.job, prompt_vs_finetune.backends.local\n"
              "print(sorted({'peft'} & set(sys.modules)))\n")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert done.stdout.splitlines() == ["[]", "[]"], done.stderr
