"""GPT-1 and the GPT-2 family through every arm, each as a scaled-down random copy of its true
architecture loaded by the normal from_pretrained path with its own conf/model YAML."""

import json

import pytest
import torch
from mlflow.tracking import MlflowClient

from bench.scaled_down import build_scaled_down, hub_config
from prompt_vs_finetune import job
from prompt_vs_finetune.errors import UserError
from prompt_vs_finetune.models.loading import load_model
from prompt_vs_finetune.scoring.logprobs import continuation_logprobs, takes_cache

from .conftest import INTENT_TRAIN, compose_config

LOCAL_MODELS = ["openai-gpt", "distilgpt2", "gpt2", "gpt2-medium", "gpt2-large", "gpt2-xl"]
ARMS = {"zero_shot": [], "few_shot": ["arm.k=2"],
        "full_finetune": ["trainer.max_epochs=1", "arm.lr=1e-3"],
        "lora": ["trainer.max_epochs=1", "arm.lr=3e-3"]}


def _corpus():
    rows = [json.loads(line) for line in INTENT_TRAIN.read_text().splitlines()]
    return [f"{r['text']}\nIntent: {r['category'].replace('_', ' ')}" for r in rows]


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    """One scaled-down random checkpoint per local model (built once for the module)."""
    root = tmp_path_factory.mktemp("scaled")
    return {name: build_scaled_down(name, _corpus(), root / name, vocab_size=600)
            for name in LOCAL_MODELS}


def test_scaled_copies_keep_each_architecture(checkpoints):
    sizes = []
    for name, path in checkpoints.items():
        config = json.loads((path / "config.json").read_text())
        true = hub_config(name)
        assert config["model_type"] == true["model_type"]
        assert config["n_positions"] == true["n_positions"]  # 512 for GPT-1, 1024 for GPT-2
        assert config["architectures"] == true["architectures"]
        sizes.append(config["n_layer"] * config["n_embd"] ** 2)
    assert sizes[2:] == sorted(sizes[2:])  # gpt2 < medium < large < xl, as the real ones


def test_gpt1_loads_with_its_tokenizer_and_an_added_end_of_text(tmp_path, checkpoints):
    cfg = compose_config(tmp_path, "model=openai-gpt",
                         f"model.name_or_path={checkpoints['openai-gpt']}")
    model, tokenizer = load_model(cfg.model, str(tmp_path))
    assert type(tokenizer).__name__ == "OpenAIGPTTokenizer"
    assert tokenizer.tokenize("Card")[0] == "card</w>"  # lower-cased, word-end BPE
    assert tokenizer.eos_token == "<|endoftext|>" and tokenizer.pad_token == "<|endoftext|>"
    assert model.get_input_embeddings().num_embeddings == len(tokenizer)
    assert model.config.eos_token_id == tokenizer.eos_token_id
    assert not takes_cache(model)  # so scoring takes the plain path


def test_gpt1_without_an_eos_setting_is_a_clear_error(tmp_path, checkpoints):
    cfg = compose_config(tmp_path, "model=openai-gpt",
                         f"model.name_or_path={checkpoints['openai-gpt']}", "model.eos_token=null")
    with pytest.raises(UserError, match="no end-of-text token; set model.eos_token"):
        load_model(cfg.model, str(tmp_path))


def test_gpt1_left_padded_scoring_matches_unpadded_passes(tmp_path, checkpoints):
    """GPT-1 has no KV cache; the plain path's left padding + position ids must still give
    each continuation the log-likelihood of a lone forward pass."""
    cfg = compose_config(tmp_path, "model=openai-gpt",
                         f"model.name_or_path={checkpoints['openai-gpt']}")
    model, tokenizer = load_model(cfg.model, str(tmp_path))
    model.eval()
    encode = lambda s: tokenizer(s, add_special_tokens=False)["input_ids"]  # noqa: E731
    contexts = [encode("my card has not arrived yet intent :"), encode("hello intent :")]
    continuations = [encode("card arrival"), encode("lost or stolen card")]
    scores = continuation_logprobs(model, contexts, continuations, tokenizer.pad_token_id)
    for i, (ctx, cont) in enumerate(zip(contexts, continuations, strict=True)):
        logits = model(torch.tensor([ctx + cont])).logits[0].log_softmax(-1)
        direct = sum(float(logits[len(ctx) - 1 + j, t]) for j, t in enumerate(cont))
        assert scores.logprob[i].item() == pytest.approx(direct, abs=1e-4)


@pytest.mark.parametrize("name", LOCAL_MODELS)
def test_every_arm_runs_with_each_architecture(tmp_path, checkpoints, name):
    """Each model's YAML (attention, LoRA targets, end-of-text handling) with its scaled-down
    checkpoint, through all four arms: one FINISHED MLflow run each, accuracy in [0, 1],
    trainable parameters as the arm says."""
    common = ["task=intent_sample", f"model={name}", f"model.name_or_path={checkpoints[name]}",
              "test_size=8", "train_size=24"]
    params = {}
    for arm, extra in ARMS.items():
        results = job.run(compose_config(tmp_path, *common, f"arm={arm}", *extra))
        assert 0.0 <= results["test/accuracy"] <= 1.0
        assert results["test/perplexity"] > 1.0
        params[arm] = (results["cost/trainable_params"], results["cost/total_params"])
    assert params["zero_shot"][0] == params["few_shot"][0] == 0
    assert params["full_finetune"][0] == params["full_finetune"][1]
    assert 0 < params["lora"][0] < params["lora"][1] * 0.5
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    runs = client.search_runs([e.experiment_id for e in client.search_experiments()])
    assert sorted(r.data.tags["arm"] for r in runs) == sorted(ARMS)
    assert {r.info.status for r in runs} == {"FINISHED"}
    assert {r.data.tags["model"] for r in runs} == {name}


def test_gpt1_generates_summaries_in_batches_as_one_by_one(tmp_path, checkpoints):
    """No KV cache and left padding: batched greedy generation must equal single prompts."""
    from prompt_vs_finetune.scoring.generation import generate

    cfg = compose_config(tmp_path, "model=openai-gpt",
                         f"model.name_or_path={checkpoints['openai-gpt']}")
    model, tokenizer = load_model(cfg.model, str(tmp_path))
    model.eval()
    prompts = [tokenizer(t, add_special_tokens=False)["input_ids"]
               for t in ("my card has not arrived", "hello", "where is my money please")]
    kwargs = {"max_new_tokens": 5, "do_sample": False, "num_beams": 1,
              "pad_token_id": tokenizer.pad_token_id,
              "eos_token_id": tokenizer.eos_token_id}
    batched = generate(model, prompts, kwargs)
    alone = [generate(model, [p], kwargs)[0] for p in prompts]
    assert batched == alone
