import math

import pytest
import torch
import torch.nn.functional as F

from prompt_vs_finetune.errors import UserError
from prompt_vs_finetune.scoring.logprobs import (
    PrefixCache,
    common_prefix_length,
    continuation_logprobs,
    normalise,
    shared_prefix_logprobs,
)


def direct_logprob(model, context: list[int], continuation: list[int]) -> float:
    """log p(continuation | context) from one unpadded forward pass, token by token."""
    ids = torch.tensor([context + continuation])
    with torch.no_grad():
        logprobs = F.log_softmax(model(ids).logits[0].double(), dim=-1)
    return sum(float(logprobs[len(context) + t - 1, tok]) for t, tok in enumerate(continuation))


def test_matches_direct_forward_pass_with_padding_and_uneven_lengths(random_lm):
    gen = torch.Generator().manual_seed(1)
    contexts = [torch.randint(0, 97, (n,), generator=gen).tolist() for n in (3, 11, 7, 1, 20)]
    continuations = [torch.randint(0, 97, (n,), generator=gen).tolist() for n in (1, 4, 2, 3, 6)]
    scores = continuation_logprobs(random_lm, contexts, continuations, pad_id=0, batch_size=2)
    for i, (ctx, cont) in enumerate(zip(contexts, continuations, strict=True)):
        assert scores.logprob[i].item() == pytest.approx(direct_logprob(random_lm, ctx, cont),
                                                         abs=1e-5)
    assert scores.n_tokens.tolist() == [1, 4, 2, 3, 6]
    expected_tokens = sum(len(a) + len(b) for a, b in zip(contexts, continuations, strict=True))
    assert scores.tokens_processed == expected_tokens


def test_batch_size_does_not_change_scores(random_lm):
    contexts = [[5, 6, 7], [8], [9, 10, 11, 12, 13]]
    continuations = [[1, 2], [3], [4, 4, 4]]
    one = continuation_logprobs(random_lm, contexts, continuations, pad_id=0, batch_size=1)
    all_ = continuation_logprobs(random_lm, contexts, continuations, pad_id=0, batch_size=8)
    assert torch.allclose(one.logprob, all_.logprob, atol=1e-5)


def test_length_normalisation():
    logprob = torch.tensor([[-4.0, -3.0]])
    n_tokens = torch.tensor([[4, 1]])
    n_chars = torch.tensor([8, 2])
    assert normalise(logprob, n_tokens, n_chars, "none").tolist() == [[-4.0, -3.0]]
    assert normalise(logprob, n_tokens, n_chars, "token").tolist() == [[-1.0, -3.0]]
    assert normalise(logprob, n_tokens, n_chars, "char").tolist() == [[-0.5, -1.5]]
    with pytest.raises(UserError, match="length_norm"):
        normalise(logprob, n_tokens, n_chars, "bytes")


def test_probabilities_of_all_continuations_sum_to_one(random_lm):
    """Scoring every one-token continuation covers the whole distribution."""
    scores = continuation_logprobs(random_lm, [[3, 4, 5]] * 97, [[t] for t in range(97)],
                                   pad_id=0, batch_size=32)
    assert math.fsum(math.exp(x) for x in scores.logprob.tolist()) == pytest.approx(1.0, abs=1e-4)


def test_module_scores_every_label_like_a_direct_forward_pass(tmp_path):
    """The whole layout: few-shot prefix + prompt + each verbalized label, as test_step ranks it."""
    from prompt_vs_finetune.models.loading import load_model
    from prompt_vs_finetune.scoring import build_scorer
    from prompt_vs_finetune.tasks import PromptEncoder, Task, load_splits, select_demos
    from prompt_vs_finetune.train.module import ArmModule

    from .conftest import compose_config

    cfg = compose_config(tmp_path, "task=intent_sample", "model=tiny", "model.tiny.n_layer=1",
                         "model.tiny.n_embd=32", "model.tiny.n_head=2", "model.tiny.vocab_size=400")
    task = Task.from_config(cfg.task)
    splits, _ = load_splits(cfg.task)
    model, tokenizer = load_model(cfg.model, str(tmp_path), splits["train"]["text"])
    model.eval()
    encoder = PromptEncoder(tokenizer, task, max_length=1024)
    encoder.set_demos(select_demos(splits["train"], 3, "random", seed=0), longest_prompt=64)
    scorer = build_scorer(encoder, cfg.scorer, cfg.decoding, cfg.seed)
    module = ArmModule(model, scorer, cfg.arm.lr, cfg.arm.weight_decay, cfg.arm.warmup_ratio,
                       cfg.compile, cfg.inference_dtype).eval()
    rows = [{"index": i, "context_ids": encoder.prompt_ids(row["text"]),
             "label": task.label_names.index(row["label"])}
            for i, row in enumerate(splits["test"].select(range(3)))]
    module.on_test_epoch_start()
    module.test_step({k: [r[k] for r in rows] for k in rows[0]}, 0)
    for row, scored in zip(rows, module.predictions, strict=True):
        text = splits["test"][row["index"]]["text"]
        context = encoder.prefix_ids + encoder.encode(task.prompt(text))
        direct = [direct_logprob(model, context, encoder.encode(task.target(task.labels[name])))
                  for name in task.label_names]
        assert scored["gold_logprob"] == pytest.approx(direct[row["label"]], abs=1e-5)
        # ranked by summed log-likelihood, and per character (the default), from one pass
        assert scored["predicted_sum"] == max(range(len(direct)), key=direct.__getitem__)
        chars = [len(task.target(task.labels[name])) for name in task.label_names]
        per_char = [lp / n for lp, n in zip(direct, chars, strict=True)]
        assert scored["predicted"] == scored["predicted_char"]
        assert scored["predicted"] == max(range(len(per_char)), key=per_char.__getitem__)


@pytest.mark.parametrize("demo_tokens", [0, 9])
def test_shared_prefix_scores_equal_plain_full_forward_passes(random_lm, demo_tokens):
    """Shared-prefix scoring (cached demos, every label after one copy of each prompt, labels
    that begin alike run as a prefix tree) gives the log-likelihoods of plain prompt + label
    passes: padded prompts of different lengths, labels of 1 to 4 tokens, labels that share
    their first tokens or are a prefix of another, with and without a shared demo prefix."""
    gen = torch.Generator().manual_seed(2)
    demos = torch.randint(1, 97, (demo_tokens,), generator=gen).tolist()
    contexts = [demos + torch.randint(1, 97, (n,), generator=gen).tolist() for n in (3, 12, 1, 7)]
    choices = [torch.randint(1, 97, (n,), generator=gen).tolist() for n in (1, 4, 2, 3, 1)]
    choices += [choices[1][:2] + [choices[1][2] % 96 + 1], choices[1][:3], choices[1][:1]]
    plain = continuation_logprobs(random_lm, [c for c in contexts for _ in choices],
                                  choices * len(contexts), pad_id=0)
    cache = PrefixCache()
    shared = shared_prefix_logprobs(random_lm, contexts, choices, pad_id=0, prefix_cache=cache)
    assert (shared.logprob - plain.logprob).abs().max() < 1e-4
    assert shared.n_tokens.tolist() == plain.n_tokens.tolist()
    for i, ctx in enumerate(contexts):  # and one unpadded forward pass per pair
        for j, choice in enumerate(choices):
            assert shared.logprob[i * len(choices) + j].item() == pytest.approx(
                direct_logprob(random_lm, ctx, choice), abs=1e-4)
    # inputs run per context: each distinct proper prefix of a label once: 3 + 1 + 2 (the
    # labels made from label 1's tokens add none; 25 tokens if every label ran whole)
    label_tokens = len(contexts) * 6
    shared_len = common_prefix_length(contexts)
    assert shared.tokens_processed == shared_len + sum(len(c) - shared_len for c in contexts) \
        + label_tokens
    again = shared_prefix_logprobs(random_lm, contexts, choices, pad_id=0, prefix_cache=cache)
    assert torch.equal(again.logprob, shared.logprob)
    assert again.tokens_processed == shared.tokens_processed - shared_len  # prefix reused


def test_common_prefix_keeps_one_token_per_context():
    assert common_prefix_length([[1, 2, 3], [1, 2, 4]]) == 2
    assert common_prefix_length([[1, 2], [1, 2, 3]]) == 1  # [1, 2]'s last token must run
    assert common_prefix_length([[7], [8]]) == 0


def test_ece_is_near_zero_for_a_model_whose_confidence_matches_its_accuracy():
    """2,000 examples, two labels of 20 and 30 characters: the model gives the first label
    probability 0.8 and is right 80% of the time. Its ECE is near 0 from the label
    distribution a user reads (the summed log-likelihoods), not the 0.3 that the softmax of
    per-character scores (nearly flat: confidence ~0.5) gave."""
    from prompt_vs_finetune.metrics.consistency import expected_calibration_error
    from prompt_vs_finetune.scoring import label_distribution

    n = 2000
    summed = torch.log(torch.tensor([[0.8, 0.2]])).repeat(n, 1)
    chars, tokens = torch.tensor([20, 30]), torch.ones(n, 2, dtype=torch.long)
    rankings = {"sum": summed, "char": normalise(summed, tokens, chars, "char")}
    gold = [0] * int(0.8 * n) + [1] * int(0.2 * n)
    predicted = rankings["char"].argmax(-1)  # ranked per character: label 0 throughout
    confidence = label_distribution(rankings, "none")[torch.arange(n), predicted]
    correct = [p == g for p, g in zip(predicted.tolist(), gold, strict=True)]
    ece = expected_calibration_error(confidence.tolist(), correct)
    assert confidence[0] == pytest.approx(0.8) and ece == pytest.approx(0.0, abs=1e-6)
    flat = torch.softmax(rankings["char"].double(), dim=-1)[torch.arange(n), predicted]
    assert expected_calibration_error(flat.tolist(), correct) > 0.25
