"""Reduced-precision scoring: casts and int8 quantization keep the model's answers, shrink its
weights, and a job records both (cost/model_memory_mb, the inference_dtype tag)."""

import copy

import pytest
import torch
from mlflow.tracking import MlflowClient
from torch import nn
from torch.ao.nn.quantized.dynamic import Linear as DynamicQuantizedLinear
from transformers import GPT2Config, GPT2LMHeadModel
from transformers.pytorch_utils import Conv1D

from prompt_vs_finetune import job
from prompt_vs_finetune.errors import UserError
from prompt_vs_finetune.models import precision
from prompt_vs_finetune.models.precision import (
    check_inference_dtype,
    conv1d_to_linear,
    to_inference_dtype,
    weight_memory_mb,
)
from prompt_vs_finetune.scoring.generation import generate
from prompt_vs_finetune.scoring.logprobs import (
    PrefixCache,
    continuation_logprobs,
    shared_prefix_logprobs,
)

from .conftest import compose_config
from .test_run import FAST

VOCAB = 211


@pytest.fixture
def gpt2():
    """2 layers, width 64; initializer_range 0.05 so the blocks, not only the embeddings,
    shape the logits (a quantization that broke the blocks must show)."""
    torch.manual_seed(0)
    config = GPT2Config(vocab_size=VOCAB, n_positions=128, n_embd=64, n_layer=2, n_head=4,
                        initializer_range=0.05, resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0)
    return GPT2LMHeadModel(config).eval()


@pytest.fixture
def input_ids():
    return torch.randint(0, VOCAB, (4, 24), generator=torch.Generator().manual_seed(1))


def close_to(reference: torch.Tensor, logits: torch.Tensor) -> bool:
    """The same next-token distributions within int8 error (measured: mean |Δ log-prob| 0.01,
    max 0.07); block weights scaled by 0.9 give 0.05 and 0.35, zeroed ones 0.3 and 1.9."""
    diff = (reference.log_softmax(-1) - logits.log_softmax(-1)).abs()
    return bool(diff.mean() < 0.02 and diff.max() < 0.2)


def test_conv1d_to_linear_preserves_logits(gpt2, input_ids):
    reference = gpt2(input_ids).logits
    converted = conv1d_to_linear(copy.deepcopy(gpt2))
    assert not any(isinstance(m, Conv1D) for m in converted.modules())
    assert sum(isinstance(m, nn.Linear) for m in converted.modules()) == 4 * 2 + 1  # + lm_head
    torch.testing.assert_close(converted(input_ids).logits, reference, atol=1e-5, rtol=0)


def test_conv1d_to_linear_inside_lora_keeps_the_adapters_and_their_merge(gpt2, input_ids):
    """A LoRA layer around a Conv1D transposes its update (fan_in_fan_out); around the Linear
    that replaces it, it must not: c_proj is square, so a wrong merge would not even fail."""
    from peft import LoraConfig, get_peft_model

    lora = get_peft_model(gpt2, LoraConfig(r=4, target_modules=["c_attn", "c_proj", "c_fc"],
                                           fan_in_fan_out=True, init_lora_weights=False))
    reference = lora(input_ids).logits.detach()
    converted = conv1d_to_linear(lora)
    assert not any(isinstance(m, Conv1D) for m in converted.modules())
    torch.testing.assert_close(converted(input_ids).logits, reference, atol=1e-5, rtol=0)
    merged = converted.merge_and_unload()
    torch.testing.assert_close(merged(input_ids).logits, reference, atol=1e-5, rtol=0)


def test_int8_on_cpu_quantizes_the_blocks_and_keeps_the_answers(gpt2, input_ids):
    reference = gpt2(input_ids).logits
    blocks_fp32 = weight_memory_mb(gpt2.transformer.h)
    quantized = to_inference_dtype(copy.deepcopy(gpt2), "int8", "cpu")
    for block in quantized.transformer.h:
        for layer in (block.attn.c_attn, block.attn.c_proj, block.mlp.c_fc, block.mlp.c_proj):
            assert isinstance(layer, DynamicQuantizedLinear)
    # the tied output layer stays the float embedding matrix, still shared
    assert quantized.lm_head.weight is quantized.transformer.wte.weight
    assert weight_memory_mb(quantized.transformer.h) < blocks_fp32 / 3  # int8 + scales, bias
    assert weight_memory_mb(quantized) < weight_memory_mb(gpt2)
    assert close_to(reference, quantized(input_ids).logits)

    for scale in (0.0, 0.9):  # the tolerance tells a broken quantization apart
        broken = copy.deepcopy(gpt2)
        for block in broken.transformer.h:
            for p in block.parameters():
                if p.ndim == 2:
                    p.data.mul_(scale)
        assert not close_to(reference, broken(input_ids).logits)


def test_int8_merges_lora_adapters_first(gpt2, input_ids):
    from peft import LoraConfig, get_peft_model

    lora = get_peft_model(gpt2, LoraConfig(r=4, target_modules=["c_attn", "c_fc"],
                                           fan_in_fan_out=True, init_lora_weights=False))
    reference = lora(input_ids).logits.detach()
    quantized = to_inference_dtype(lora, "int8", torch.device("cpu"))
    assert type(quantized) is GPT2LMHeadModel
    assert isinstance(quantized.transformer.h[0].attn.c_attn, DynamicQuantizedLinear)
    assert close_to(reference, quantized(input_ids).logits)


@pytest.mark.parametrize("name", ["bfloat16", "float16"])
def test_half_precision_halves_memory_and_scores_close_to_float32(gpt2, name):
    contexts = [[5, 6, 7, 8, 9, 10, 11], [5, 6, 7, 8, 12], [5, 6, 7, 8, 13, 14]]
    choices = [[20, 21], [22], [23, 24, 25]]
    pairs = ([c for c in contexts for _ in choices], choices * len(contexts))
    reference = continuation_logprobs(gpt2, *pairs, pad_id=0).logprob
    full = weight_memory_mb(gpt2)

    half = to_inference_dtype(copy.deepcopy(gpt2), name, "cpu")
    assert {p.dtype for p in half.parameters()} == {getattr(torch, name)}
    assert not any(isinstance(m, Conv1D) for m in half.modules())  # fast half-precision GEMMs
    assert weight_memory_mb(half) == pytest.approx(full / 2)
    plain = continuation_logprobs(half, *pairs, pad_id=0).logprob
    # bf16 keeps 8 bits of mantissa: sums of a few log-probs of ~-5 move by a few hundredths
    torch.testing.assert_close(plain, reference, atol=0.15, rtol=0)
    shared = shared_prefix_logprobs(half, contexts, choices, 0, PrefixCache()).logprob
    torch.testing.assert_close(shared, reference, atol=0.15, rtol=0)
    kwargs = {"max_new_tokens": 3, "do_sample": False, "num_beams": 1, "eos_token_id": VOCAB - 1,
              "pad_token_id": 0}
    prompts = [list(range(1, 20)) + [30], list(range(1, 20)) + [31, 32]]  # shared prefix
    assert all(len(t) <= 3 for t in generate(half, prompts, kwargs, PrefixCache()))


def test_unknown_or_unsupported_dtype_is_a_one_line_user_error(monkeypatch, tmp_path):
    with pytest.raises(UserError, match=r"inference_dtype 'fp8' is unknown; use float32, "
                                        r"float16, bfloat16, int8") as err:
        check_inference_dtype("fp8", "cpu")
    assert "\n" not in str(err.value)
    with pytest.raises(UserError, match="inference_dtype 'int4' is unknown"):
        job.run(compose_config(tmp_path, *FAST, "inference_dtype=int4"))
    monkeypatch.setattr(precision.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(UserError, match="int8 on CUDA needs bitsandbytes.*pip install"):
        check_inference_dtype("int8", "gpu")
    check_inference_dtype("int8", "cpu")  # CPU needs nothing extra


def only_run(folder):
    client = MlflowClient(f"sqlite:///{folder / 'mlflow.db'}")
    (run,) = client.search_runs([e.experiment_id for e in client.search_experiments()])
    return run


def test_a_job_records_the_dtype_and_the_smaller_weights(tmp_path):
    """A zero-shot job in float32 and a LoRA job in int8: Lightning loads the LoRA job's best
    checkpoint (adapter weights) before testing, which a merged int8 model could not take, so
    this also shows the cast comes after it."""
    full = job.run(compose_config(tmp_path / "fp32", *FAST, "arm=zero_shot"))
    int8 = job.run(compose_config(tmp_path / "int8", *FAST, "arm=lora",
                                         "model.max_epochs=1", "train_size=32",
                                         "inference_dtype=int8"))
    # same architecture (LoRA merged): the blocks' weights at a quarter of their size
    assert int8["cost/model_memory_mb"] < 0.9 * full["cost/model_memory_mb"]
    assert int8["val/best_loss"] > 0 and 0.0 <= int8["test/accuracy"] <= 1.0
    for folder, name in (("fp32", "float32"), ("int8", "int8")):
        run = only_run(tmp_path / folder)
        assert run.info.status == "FINISHED" and run.data.tags["inference_dtype"] == name
        assert run.data.metrics["cost/model_memory_mb"] > 0
