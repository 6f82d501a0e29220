"""Consistency, degeneration and calibration (issue 16): each metric on inputs whose value is
known by hand, calibration on a model biased toward one label, and the content-free
estimate matched against direct forward passes."""

import math

import pytest
import torch
from mlflow.tracking import MlflowClient
from omegaconf import OmegaConf

from prompt_vs_finetune import job
from prompt_vs_finetune import scoring as calibration
from prompt_vs_finetune.metrics import consistency
from prompt_vs_finetune.scoring import RankClassifier
from prompt_vs_finetune.scoring.logprobs import continuation_logprobs
from prompt_vs_finetune.tasks import PromptEncoder, Task

from .conftest import compose_config


def test_distinct_n_counts_unique_ngrams_over_all_outputs():
    outputs = [["a", "b", "a"], ["a", "c"]]
    assert consistency.distinct(outputs, 1) == pytest.approx(3 / 5)  # a b c of 5 words
    assert consistency.distinct(outputs, 2) == pytest.approx(1.0)  # ab ba ac: all distinct
    assert consistency.distinct([["x"]], 2) == 0.0  # no bigram at all


def test_repeated_ngram_rate_is_the_share_of_trigrams_seen_before_in_the_output():
    loop = "the customer said the customer said the customer said".split()
    # 7 trigrams: (the customer said), (customer said the), (said the customer) and their
    # 4 repeats
    assert consistency.repeated_ngram_rate(loop) == pytest.approx(4 / 7)
    assert consistency.repeated_ngram_rate("a b c d".split()) == 0.0
    assert consistency.repeated_ngram_rate(["a", "b"]) == 0.0


def test_generation_consistency_on_known_rows():
    rows = [{"generated": "A b c", "hit_limit": True},
            {"generated": "a b c d e f g", "hit_limit": False}]
    values = consistency.generation(rows)
    assert values["hit_max_new_tokens"] == 0.5
    assert values["length_words_mean"] == 5.0
    assert values["length_words_std"] == 2.0  # lengths 3 and 7
    assert values["distinct_1"] == pytest.approx(7 / 10)  # lower-cased: a b c d e f g


def test_expected_calibration_error_by_hand():
    # bin (0.6, 0.667]: two at 0.65, one right -> |0.5 - 0.65|; bin (0.933, 1]: one at 1.0,
    # right -> 0; weights 2/3 and 1/3
    assert consistency.expected_calibration_error([0.65, 0.65, 1.0], [True, False, True]) == \
        pytest.approx(2 / 3 * 0.15)
    assert consistency.expected_calibration_error([0.9] * 10, [True] * 9 + [False]) == \
        pytest.approx(0.0)


def test_contextual_calibration_removes_a_bias_toward_one_label():
    """A model that adds log(20) to label 0 whatever the input: uncalibrated it always says 0;
    the content-free inputs see the same bias, and dividing it out recovers the signal."""
    signal = torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
    bias = torch.tensor([math.log(20), 0.0, 0.0])
    logprob = torch.log_softmax(signal + bias, -1)
    content_free = torch.log_softmax(torch.zeros(3, 3) + bias, -1)
    assert logprob.argmax(-1).tolist() == [0, 0, 0]
    calibrated = calibration.contextual(logprob, content_free)
    assert calibrated.argmax(-1).tolist() == [0, 1, 2]
    assert calibrated.exp().sum(-1).tolist() == pytest.approx([1.0, 1.0, 1.0])
    # PMI against a premise with the same bias does the same
    assert calibration.pmi(logprob, content_free[:1]).argmax(-1).tolist() == [0, 1, 2]


def test_content_free_estimate_matches_direct_forward_passes(random_lm):
    """The classifier's content-free and premise log-likelihoods equal a plain forward pass of
    prefix + template(content-free text) + label, on both scoring paths."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {chr(ord("a") + i): i for i in range(26)} | {" ": 26, "\n": 27, ":": 28,
                                                         "[UNK]": 29, "/": 30, "N": 31,
                                                         "A": 32, "[": 33, "]": 34, "M": 35,
                                                         "S": 36, "K": 37, "<eos>": 38}
    raw = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    raw.pre_tokenizer = pre_tokenizers.Split("", "isolated")
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=raw, eos_token="<eos>",
                                        pad_token="<eos>")
    task = Task(name="t", type="classification", template="q: {text}\nintent:",
                target_template=" {answer}", demo_separator="\n", metrics=("accuracy",),
                labels={"bill": "bill", "card": "card"})
    encoder = PromptEncoder(tokenizer, task, max_length=60)
    encoder.set_demos([{"text": "pay", "label": "bill"}], longest_prompt=20)
    for share in (True, False):
        scorer = RankClassifier(encoder, OmegaConf.create(
            {"length_norm": "none", "batch_size": 8, "examples_per_batch": 8,
             "share_prefix": share, "max_batch_tokens": None, "calibration": "contextual",
             "content_free": ["N/A", "", "[MASK]"]}))
        references, tokens = scorer._references(random_lm)
        assert tokens > 0 and scorer._references(random_lm)[1] == 0  # once per test
        contexts = [encoder.prompt_ids(t) for t in ("N/A", "", "[MASK]")]
        contexts.append(encoder.prefix_ids + encoder.encode("\nintent:"))
        direct = continuation_logprobs(random_lm, [c for c in contexts for _ in range(2)],
                                       encoder.choice_ids * 4, pad_id=38).logprob.view(4, 2)
        torch.testing.assert_close(references["contextual"], direct[:3], atol=1e-4, rtol=0)
        torch.testing.assert_close(references["pmi"], direct[3:], atol=1e-4, rtol=0)


def test_a_run_logs_every_ranking_and_the_chosen_one_is_test_accuracy(tmp_path):
    fast = ("task=intent_sample", "model=tiny", "model.tiny.n_layer=1", "test_size=24",
            "arm=few_shot", "arm.k=4")
    plain = job.run(compose_config(tmp_path / "none", *fast))
    calibrated = job.run(compose_config(tmp_path / "cc", *fast, "scorer.calibration=contextual"))
    for ranking in ("sum", "char", "contextual", "pmi"):  # the same pass, the same numbers
        assert plain[f"test/accuracy_{ranking}"] == calibrated[f"test/accuracy_{ranking}"]
    assert plain["test/accuracy"] == plain["test/accuracy_char"]  # the default ranking
    assert calibrated["test/accuracy"] == calibrated["test/accuracy_contextual"]
    assert 0.0 <= calibrated["test/ece"] <= 1.0
    client = MlflowClient(f"sqlite:///{tmp_path / 'cc' / 'mlflow.db'}")
    (run,) = client.search_runs([e.experiment_id for e in client.search_experiments()])
    assert run.data.tags["calibration"] == "contextual"
