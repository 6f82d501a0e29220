import math

import pytest
import torch
from omegaconf import OmegaConf

from prompt_vs_finetune import job
from prompt_vs_finetune.errors import UserError
from prompt_vs_finetune.metrics import likelihood, perplexity
from prompt_vs_finetune.metrics.cost import Usage, call_usd, cost_metrics
from prompt_vs_finetune.tasks import task_type
from prompt_vs_finetune.tasks.classification import metrics as classification
from prompt_vs_finetune.train.module import CostMeter

from .conftest import compose_config
from .test_run import FAST

COST = OmegaConf.create({"usd_per_hour": 3600.0, "prompt_flops_per_second": 100.0,
                         "generated_flops_per_second": 10.0, "train_flops_per_second": 50.0})


def per_example(type_name: str, rows: list[dict]) -> list[float]:
    return task_type(type_name).each(rows)


def rows(preds, golds):
    return [{"label": g, "predicted": p} for p, g in zip(preds, golds, strict=True)]


def test_accuracy_and_macro_f1_on_hand_computed_inputs():
    result = classification(("accuracy", "macro_f1"), rows([0, 0, 0, 1, 1], [0, 0, 1, 1, 2]))
    assert result["accuracy"] == pytest.approx(3 / 5)
    # label 0: tp=2 fp=1 fn=0 -> f1 0.8; label 1: tp=1 fp=1 fn=1 -> 0.5; label 2: tp=0 -> 0
    assert result["macro_f1"] == pytest.approx((0.8 + 0.5 + 0.0) / 3)
    assert result["unparsed_rate"] == 0.0 and "perplexity" not in result


def test_macro_f1_averages_over_gold_labels_and_unparsed_counts_as_wrong():
    # gold {0, 1}; a prediction of label 2 (never gold) and an unparsed reply (None) are both
    # wrong, and neither becomes a class of the average: label 0 f1 2/3 (tp 1, fn 1), label 1
    # f1 2/3 (tp 1, fn 1) -> 2/3. Averaging over gold u predicted would add label 2's 0.
    result = classification(("accuracy", "macro_f1"), rows([0, 2, 1, None], [0, 0, 1, 1]))
    assert result["accuracy"] == pytest.approx(0.5)
    assert result["macro_f1"] == pytest.approx(2 / 3)
    assert result["unparsed_rate"] == pytest.approx(0.25)


def test_unknown_metric_name():
    with pytest.raises(UserError, match="unknown metric 'bleu'"):
        classification(("bleu",), rows([0], [0]))


def test_perplexity_known_case():
    # two answers, three tokens, each token with probability 1/2 -> perplexity 2
    assert perplexity([2 * math.log(0.5), math.log(0.5)], [2, 1]) == pytest.approx(2.0)
    # a certain answer has perplexity 1
    assert perplexity([0.0], [4]) == pytest.approx(1.0)


def test_a_prediction_is_charged_its_own_tokens():
    """10 parameters: 2 x 10 FLOPs a token; 100 FLOP/s reading, 10 writing; $1 a second."""
    row = {"call_tokens": 50, "prefix_tokens": 40, "generated_tokens": 5}
    tokens, usd = call_usd(row, 10, COST, n_calls=4)
    assert tokens == 55 and usd == pytest.approx(20 * (50 / 100 + 5 / 10))
    tokens, usd = call_usd(row, 10, COST, n_calls=4, cached=True)  # demos paid once over 4 calls
    assert tokens == pytest.approx(10 + 40 / 4 + 5)
    assert usd == pytest.approx(20 * ((10 + 10) / 100 + 5 / 10))


def test_cost_formulas():
    meter = CostMeter()
    meter.seconds = {"train": 1800.0, "eval": 36.0}
    meter.tokens = {"train": 1000, "val": 100, "input": 300, "generated": 7, "eval_only": 93}
    rows = [{"call_tokens": 30, "prefix_tokens": 0}] * 100
    usage = meter.usage(rows=rows, total_params=10, trainable_params=2,
                        cost_cfg=OmegaConf.merge(COST, {"usd_per_hour": 2.0}),
                        device=torch.device("cpu"), fitted=True, model_memory_mb=1.5)
    cost = cost_metrics(usage)
    assert cost["cost/flops"] == (4 * 10 + 2 * 2) * 1000 + 2 * 10 * (100 + 300 + 7 + 93)
    per_call = 2 * 10 * 30 / 100 * 2.0 / 3600  # modelled: 30 tokens at 100 FLOP/s
    assert cost["cost/usd_per_1k_predictions"] == pytest.approx(per_call * 1000)
    # the fit, modelled: 44 FLOPs a trained token at 50 FLOP/s, and 100 validation tokens
    # at 2N FLOPs each at the prompt rate; the wall time's price beside it
    fit = ((4 * 10 + 2 * 2) * 1000 / 50 + 2 * 10 * 100 / 100) * 2.0 / 3600
    assert cost["cost/train_usd"] == pytest.approx(fit)
    assert cost["cost/usd"] == pytest.approx(fit + 100 * per_call)
    assert cost["cost/train_usd_measured"] == pytest.approx(1800 / 3600 * 2.0)
    assert cost["cost/tokens_per_prediction"] == 30
    assert cost["cost/latency_ms_per_example"] == pytest.approx(360.0)
    assert cost["cost/usd_per_1k_predictions_measured"] == pytest.approx(
        0.36 * 1000 / 3600 * 2.0)  # the wall time, beside the model
    assert cost["cost/trainable_params"] == 2 and cost["cost/peak_memory_mb"] > 0
    assert cost["cost/eval_tokens"] == 300 and cost["cost/generated_tokens"] == 7
    assert cost["cost/eval_only_tokens"] == 93 and cost["cost/model_memory_mb"] == 1.5
    full = cost_metrics(meter.usage(rows=rows, total_params=10, trainable_params=10,
                                    cost_cfg=COST, device=torch.device("cpu"), fitted=True,
                                    model_memory_mb=1.5))
    assert full["cost/flops"] == 6 * 10 * 1000 + 2 * 10 * 500  # the familiar 6N per token
    # load moves the wall time, never the modelled cost: a fit that took 5x as long
    meter.seconds["train"] *= 5
    loaded = cost_metrics(meter.usage(rows=rows, total_params=10, trainable_params=10,
                                      cost_cfg=COST, device=torch.device("cpu"), fitted=True,
                                      model_memory_mb=1.5))
    assert loaded["cost/train_usd"] == full["cost/train_usd"]
    assert loaded["cost/train_usd_measured"] == pytest.approx(5 * full["cost/train_usd_measured"])


def test_a_run_pays_for_its_labels_up_front(tmp_path):
    """cost.usd_per_label x data/n_labels: cost/labels_usd, part of what the run cost."""
    results = job.run(compose_config(tmp_path, *FAST, "arm=zero_shot", "train_size=14",
                                     "cost.usd_per_label=0.25"))
    assert results["data/n_labels"] == 14 and results["cost/labels_usd"] == pytest.approx(3.5)
    assert results["cost/usd"] == pytest.approx(
        3.5 + results["cost/usd_per_1k_predictions"] * results["data/n_test"] / 1000, rel=1e-3)
    # zero-shot has no demos to cache: the same price both ways
    assert results["cost/usd_per_1k_predictions_cached"] == \
        results["cost/usd_per_1k_predictions"]


def test_hosted_usage_gives_the_same_cost_keys_by_the_same_formulas():
    cost = cost_metrics(Usage(n_predictions=4, eval_seconds=2.0, eval_usd=0.02,
                              input_tokens=400, generated_tokens=12, charged_tokens=412))
    assert cost["cost/usd_per_1k_predictions"] == pytest.approx(5.0)
    assert cost["cost/latency_ms_per_example"] == pytest.approx(500.0)
    assert cost["cost/usd"] == pytest.approx(0.02) and cost["cost/train_usd"] == 0
    assert "cost/flops" not in cost  # needs the weights: local runs only (tracking/keys.py)


def test_both_accuracies_and_bits_per_byte_on_known_inputs():
    rows = [{"label": 0, "predicted": 0, "predicted_sum": 1, "predicted_char": 0,
             "gold_logprob": math.log(0.5), "gold_tokens": 1, "gold_bytes": 2},
            {"label": 1, "predicted": 1, "predicted_sum": 1, "predicted_char": 0,
             "gold_logprob": math.log(0.25), "gold_tokens": 2, "gold_bytes": 1}]
    result = classification(("accuracy",), rows)
    assert result["accuracy"] == 1.0
    assert result["accuracy_sum"] == 0.5 and result["accuracy_char"] == 0.5
    # 1 + 2 bits over 3 bytes; the tokens are 3 too: perplexity 2^(3/3) = 2
    assert result["bits_per_byte"] == pytest.approx(1.0)
    assert result["perplexity"] == pytest.approx(2.0)
    # the same text cut into more tokens: perplexity changes, bits per byte does not
    finer = likelihood([math.log(0.5), math.log(0.25)], [3, 6], [2, 1])
    assert finer["bits_per_byte"] == pytest.approx(1.0) and finer["perplexity"] < 2.0


def test_per_example_values_average_to_the_metric():
    rows = [{"label": 0, "predicted": 0}, {"label": 1, "predicted": None},
            {"label": 1, "predicted": 1}]
    assert per_example("classification", rows) == [1.0, 0.0, 1.0]
    summaries = [{"generated": "the cat sat", "references": ["the cat sat"]},
                 {"generated": "a dog", "references": ["the cat sat"]}]
    assert per_example("generation", summaries) == pytest.approx([1.0, 0.0])
