import math

import pytest
import torch

from prompt_vs_finetune.cost import CostMeter
from prompt_vs_finetune.errors import UserError
from prompt_vs_finetune.metrics import classification_metrics, perplexity


def test_accuracy_and_macro_f1_on_hand_computed_inputs():
    preds = [0, 0, 0, 1, 1]
    golds = [0, 0, 1, 1, 2]
    result = classification_metrics(("accuracy", "macro_f1"), preds, golds)
    assert result["accuracy"] == pytest.approx(3 / 5)
    # label 0: tp=2 fp=1 fn=0 -> f1 0.8; label 1: tp=1 fp=1 fn=1 -> 0.5; label 2: tp=0 -> 0
    assert result["macro_f1"] == pytest.approx((0.8 + 0.5 + 0.0) / 3)


def test_unknown_metric_name():
    with pytest.raises(UserError, match="unknown metric 'bleu'"):
        classification_metrics(("bleu",), [0], [0])


def test_perplexity_known_case():
    # two answers, three tokens, each token with probability 1/2 -> perplexity 2
    assert perplexity([2 * math.log(0.5), math.log(0.5)], [2, 1]) == pytest.approx(2.0)
    # a certain answer has perplexity 1
    assert perplexity([0.0], [4]) == pytest.approx(1.0)


def test_cost_summary_formulas():
    meter = CostMeter()
    meter.seconds = {"train": 1800.0, "eval": 36.0}
    meter.tokens = {"train": 1000, "val": 100, "eval": 400, "generated": 7}
    cost = meter.summary(n_predictions=100, total_params=10, trainable_params=2,
                         usd_per_hour=2.0, device=torch.device("cpu"), fitted=True)
    assert cost["cost/flops"] == (4 * 10 + 2 * 2) * 1000 + 2 * 10 * (100 + 400)
    assert cost["cost/usd"] == pytest.approx((1800 + 36) / 3600 * 2.0)
    assert cost["cost/train_usd"] == pytest.approx(1.0)
    assert cost["cost/latency_ms_per_example"] == pytest.approx(360.0)
    assert cost["cost/usd_per_1k_predictions"] == pytest.approx(0.36 * 1000 / 3600 * 2.0)
    assert cost["cost/trainable_params"] == 2 and cost["cost/peak_memory_mb"] > 0
    assert cost["cost/generated_tokens"] == 7
    full = meter.summary(n_predictions=100, total_params=10, trainable_params=10,
                         usd_per_hour=2.0, device=torch.device("cpu"), fitted=True)
    assert full["cost/flops"] == 6 * 10 * 1000 + 2 * 10 * 500  # the familiar 6N per token
