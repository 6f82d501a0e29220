"""Training computes logits only where there is loss (issue 17): the answer-only loss equals
transformers' causal-LM loss over the full logits, for padded batches, for a plain and a LoRA
model, and its gradients are the same."""

import pytest
import torch
from peft import LoraConfig, get_peft_model

from prompt_vs_finetune.tasks.prompts import IGNORE_INDEX
from prompt_vs_finetune.train.datamodule import pad_collate
from prompt_vs_finetune.train.module import answer_loss, decoder_of

from .conftest import LORA_TARGETS

EXAMPLES = [  # prompt tokens (no loss), then the answer and end-of-text
    {"input_ids": [5, 6, 7, 8, 9, 10, 11], "labels": [IGNORE_INDEX] * 4 + [9, 10, 11]},
    {"input_ids": [12, 13, 14, 15, 16], "labels": [IGNORE_INDEX] * 3 + [15, 16]},
    {"input_ids": [20, 21, 22, 23, 24, 25, 26, 27, 28], "labels": [IGNORE_INDEX] * 6
     + [26, 27, 28]},
]


def full_logits_loss(model, batch):
    return model(**{k: v for k, v in batch.items() if k != "n_tokens"}).loss


@pytest.mark.parametrize("lora", [False, True])
def test_answer_only_loss_equals_the_full_logits_loss(random_lm, lora):
    model = random_lm
    if lora:
        targets = LORA_TARGETS[model.config.model_type]
        model = get_peft_model(model, LoraConfig(r=4, target_modules=targets,
                                                 init_lora_weights=False))
    batch = pad_collate(pad_id=0)(EXAMPLES)
    expected = full_logits_loss(model, batch)
    got = answer_loss(decoder_of(model), model.get_output_embeddings(), batch)
    assert got.item() == pytest.approx(expected.item(), abs=1e-5)
    trained = [p for p in model.parameters() if p.requires_grad]
    want = torch.autograd.grad(expected, trained)
    have = torch.autograd.grad(answer_loss(decoder_of(model), model.get_output_embeddings(),
                                           batch), trained)
    for a, b in zip(have, want, strict=True):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-4)
