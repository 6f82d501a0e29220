import json

import pytest
import torch
from omegaconf import OmegaConf
from rouge_score import rouge_scorer

from prompt_vs_finetune.errors import UserError
from prompt_vs_finetune.metrics import rouge_each
from prompt_vs_finetune.models.loading import load_model
from prompt_vs_finetune.scoring import Summarizer, generation
from prompt_vs_finetune.scoring.generation import (
    MIN_SHARED_PREFIX,
    cut_at_stop,
    generate,
    generate_kwargs,
)
from prompt_vs_finetune.scoring.logprobs import PrefixCache, continuation_logprobs
from prompt_vs_finetune.tasks import IGNORE_INDEX, PromptEncoder, Task, load_splits, select_demos

from .conftest import compose_config

PAIRS = [
    ("the cat sat on the mat", ["a cat was sitting on the mat"]),
    ("police arrested two men in Leeds", ["two men were arrested by police in Leeds",
                                          "Leeds police arrest two men"]),
    ("rain delayed trains", ["storms cancelled ferries", "heavy rain delayed the trains"]),
]


def rouge(predictions: list[str], references: list[list[str]]) -> dict[str, float]:
    """Best-of-references ROUGE F-measures (`<type>_best`) averaged over the examples."""
    each = rouge_each(predictions, references)
    return {t.removesuffix("_best"): sum(v) / len(v) for t, v in each.items()
            if t.endswith("_best")}


def test_rouge_matches_rouge_score_with_single_and_multiple_references():
    types = ["rouge1", "rouge2", "rougeL", "rougeLsum"]
    scorer = rouge_scorer.RougeScorer(types, use_stemmer=True)
    expected = {t: 0.0 for t in types}
    for prediction, refs in PAIRS:
        for t in types:  # best reference per example, per type
            expected[t] += max(scorer.score(ref, prediction)[t].fmeasure for ref in refs)
    result = rouge([p for p, _ in PAIRS], [r for _, r in PAIRS])
    for t in types:
        assert result[t] == pytest.approx(expected[t] / len(PAIRS), abs=1e-9)
    assert rouge(["identical words"], [["identical words"]])["rouge2"] == pytest.approx(1.0)
    # stemming: "arrested" and "arrest" match
    assert rouge(["police arrest"], [["police arrested"]])["rouge1"] == pytest.approx(1.0)


def test_multi_reference_rouge_is_the_mean_over_references_as_dialogsum_scores():
    """Each reference scored alone, then averaged (DialogSum's protocol); the best reference's
    score kept beside it as `<type>_best`. By hand, ROUGE-1 of "police arrested two men in
    Leeds" (stemmed: polic arrest two men in leed) against "two men were arrested by police in
    Leeds" (6 of 8 words: F 6/7), "Leeds police arrest two men" (5 of 6: F 10/11) and "storms
    cancelled ferries" (0): (6/7 + 10/11 + 0) / 3."""
    types = ["rouge1", "rouge2", "rougeL", "rougeLsum"]
    prediction, refs = PAIRS[1][0], [*PAIRS[1][1], PAIRS[2][1][0]]
    scorer = rouge_scorer.RougeScorer(types, use_stemmer=True)
    each = [scorer.score(ref, prediction) for ref in refs]
    scores = rouge_each([prediction], [refs])
    assert scores["rouge1"] == [pytest.approx((6 / 7 + 10 / 11 + 0) / 3)]
    assert scores["rouge1_best"] == [pytest.approx(10 / 11)]
    for t in types:
        per_reference = [s[t].fmeasure for s in each]
        assert scores[t] == [pytest.approx(sum(per_reference) / len(refs))]
        assert scores[f"{t}_best"] == [pytest.approx(max(per_reference))]


@pytest.fixture(scope="module")
def summary_setup(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("gen")
    cfg = compose_config(tmp, "task=summary_sample", "model=tiny", "model.tiny.n_layer=1",
                         "model.tiny.n_embd=32", "model.tiny.n_head=2",
                         "model.tiny.vocab_size=400", "decoding.max_new_tokens=12")
    task = Task.from_config(cfg.task)
    splits, _ = load_splits(cfg.task)
    model, tokenizer = load_model(cfg.model, str(tmp), splits["train"]["text"])
    return cfg, task, splits, model.eval(), tokenizer


def test_greedy_is_deterministic_and_batching_does_not_change_it(summary_setup):
    cfg, task, splits, model, tokenizer = summary_setup
    encoder = PromptEncoder(tokenizer, task, 1024, answer_room=12)
    prompts = [encoder.prompt_ids(t) for t in splits["test"]["text"][:4]]
    kwargs = generate_kwargs(cfg.decoding, tokenizer)
    batched = generate(model, prompts, kwargs)
    assert batched == generate(model, prompts, kwargs)
    assert batched == [generate(model, [p], kwargs)[0] for p in prompts]  # left padding is exact
    assert all(0 < len(tokens) <= 12 for tokens in batched)


@pytest.mark.parametrize("architecture", ["gpt2", "llama"])
def test_ragged_prefill_gives_the_per_example_outputs(summary_setup, monkeypatch, architecture):
    """Prompts of different lengths are prefilled one by one (no padding), then decoded
    together: the outputs of the per-example loop and of a padded batch, token for token, on
    GPT-2 (absolute positions) and on Llama (rotary positions, grouped key/value heads)."""
    cfg, task, splits, model, tokenizer = summary_setup
    if architecture == "llama":
        model = random_llama(len(tokenizer))
    encoder = PromptEncoder(tokenizer, task, 1024, answer_room=12)
    prompts = [encoder.prompt_ids(t) for t in splits["test"]["text"][:6]]
    assert len({len(p) for p in prompts}) > 1 and generation.ragged(model, prompts)
    kwargs = generate_kwargs(cfg.decoding, tokenizer) | {"min_new_tokens": 12}
    prefilled = []
    real = generation.ragged_prefill
    monkeypatch.setattr(generation, "ragged_prefill",
                        lambda *a: prefilled.append(real(*a)) or prefilled[-1])
    passed = []
    real_generate = model.generate
    monkeypatch.setattr(model, "generate", lambda **kw: passed.append(kw) or real_generate(**kw))
    ragged = generate(model, prompts, kwargs)
    assert [type(c).__name__ for c in prefilled] == ["StaticCache"]  # written in place
    assert passed[0]["disable_compile"] is True  # no auto-compile per batch shape on GPUs
    # room for every prompt (less its last token) and the new tokens, no more
    assert prefilled[0].layers[0].keys.shape[:3] == (6, 2, max(map(len, prompts)) + 12)
    assert ragged == [generate(model, [p], kwargs)[0] for p in prompts]
    monkeypatch.setattr(generation, "ragged", lambda *a: False)
    assert ragged == generate(model, prompts, kwargs)  # the padded batch


def test_shared_demo_prefix_is_encoded_once_and_changes_nothing(summary_setup, monkeypatch):
    """Few-shot prompts: the demos come from a key/value cache (copied into one preallocated
    batch cache, padding in the middle of each row) and greedy outputs equal plain left-padded
    generation."""
    cfg, task, splits, model, tokenizer = summary_setup
    built = []
    real = generation.batch_cache
    monkeypatch.setattr(generation, "batch_cache", lambda *a: built.append(real(*a)) or built[-1])
    encoder = PromptEncoder(tokenizer, task, 1024, answer_room=12)
    encoder.set_demos(select_demos(splits["train"], 2, "random", seed=0), longest_prompt=300)
    prompts = [encoder.prompt_ids(t) for t in splits["test"]["text"][:5]]
    assert len({len(p) for p in prompts}) > 1  # rows need padding
    kwargs = {**generate_kwargs(cfg.decoding, tokenizer), "min_new_tokens": 12}
    cache = PrefixCache()
    shared = generate(model, prompts, kwargs, prefix_cache=cache)
    assert len(cache.tokens) >= len(encoder.prefix_ids) > MIN_SHARED_PREFIX  # the cache was used
    assert type(built[0]).__name__ == "StaticCache"
    assert built[0].layers[0].keys.shape[:2] == (5, 2)  # one row per prompt
    assert shared == generate(model, prompts, kwargs)
    assert shared == [generate(model, [p], kwargs)[0] for p in prompts]
    assert all(len(tokens) == 12 for tokens in shared)


def test_decoding_options_reach_generate(summary_setup, monkeypatch):
    cfg, _, _, model, tokenizer = summary_setup
    seen = {}

    def spy(**kwargs):
        seen.update(kwargs)
        return kwargs["input_ids"]

    monkeypatch.setattr(model, "generate", spy)
    beam = OmegaConf.merge(cfg.decoding, {"strategy": "beam", "num_beams": 3,
                                          "length_penalty": 0.6, "no_repeat_ngram_size": 2,
                                          "repetition_penalty": 1.3})
    generate(model, [[1, 2, 3]], generate_kwargs(beam, tokenizer, stop=("\n",)))
    assert seen["num_beams"] == 3 and seen["length_penalty"] == 0.6 and not seen["do_sample"]
    assert seen["no_repeat_ngram_size"] == 2 and seen["repetition_penalty"] == 1.3
    assert seen["stop_strings"] == ["\n"] and seen["tokenizer"] is tokenizer
    sampling = OmegaConf.merge(cfg.decoding, {"strategy": "sampling", "temperature": 0.5,
                                              "top_k": 7, "top_p": 0.8})
    generate(model, [[1, 2, 3]], generate_kwargs(sampling, tokenizer))
    assert seen["do_sample"] and seen["temperature"] == 0.5
    assert seen["top_k"] == 7 and seen["top_p"] == 0.8


def test_seeded_sampling_repeats(summary_setup):
    cfg, task, splits, model, tokenizer = summary_setup
    encoder = PromptEncoder(tokenizer, task, 1024, answer_room=12)
    sampling = OmegaConf.merge(cfg.decoding, {"strategy": "sampling"})
    scorer = Summarizer(encoder, sampling, score_batch_size=64, seed=3)
    batch = {"index": [0, 1], "references": [["a b"], ["c"]],
             "context_ids": [encoder.prompt_ids(t) for t in splits["test"]["text"][:2]]}
    scorer.start()
    first = [r["generated"] for r in scorer.step(model, batch)[0]]
    scorer.start()
    assert first == [r["generated"] for r in scorer.step(model, batch)[0]]


def random_llama(vocab_size: int):
    """A 2-layer Llama (grouped key/value heads, rotary positions) with random weights."""
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=vocab_size, hidden_size=32, intermediate_size=64,
                         num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                         max_position_embeddings=2048, tie_word_embeddings=True)
    return LlamaForCausalLM(config).eval()


@pytest.mark.parametrize("architecture", ["gpt2", "llama"])
def test_references_share_their_prompt_and_equal_a_sequence_per_reference(summary_setup,
                                                                         architecture):
    """Each prompt runs once for all its references (after the demos' cached keys/values):
    the same log-likelihoods as one left-padded sequence per (prompt, reference), in fewer
    tokens."""
    cfg, task, splits, model, tokenizer = summary_setup
    if architecture == "llama":
        model = random_llama(len(tokenizer))
    encoder = PromptEncoder(tokenizer, task, 1024, answer_room=12)
    encoder.set_demos(select_demos(splits["train"], 1, "random", seed=0), longest_prompt=200)
    scorer = Summarizer(encoder, cfg.decoding, score_batch_size=64, seed=0)
    refs = splits["test"]["references"][:3]
    assert [len(r) for r in refs] == [3, 3, 3]  # DialogSum's three references
    pairs = [(encoder.prompt_ids(text), encoder.encode(task.target(ref)))
             for text, rs in zip(splits["test"]["text"][:3], refs, strict=True) for ref in rs]
    shared = scorer._reference_logprobs(
        model, [encoder.prompt_ids(text) for text in splits["test"]["text"][:3]],
        [[encoder.encode(task.target(ref)) for ref in rs] for rs in refs])
    plain = continuation_logprobs(model, [p[0] for p in pairs], [p[1] for p in pairs],
                                  pad_id=tokenizer.pad_token_id)
    assert torch.allclose(shared.logprob, plain.logprob, atol=1e-4)
    assert torch.equal(shared.n_tokens, plain.n_tokens)
    assert shared.tokens_processed < plain.tokens_processed / 2


def test_long_reference_is_scored_within_the_context(summary_setup):
    cfg, task, splits, model, tokenizer = summary_setup
    encoder = PromptEncoder(tokenizer, task, max_length=64, answer_room=8)
    scorer = Summarizer(encoder, OmegaConf.merge(cfg.decoding, {"max_new_tokens": 8}),
                        score_batch_size=64, seed=0)
    context = encoder.prompt_ids("The council met on Monday. " * 40)  # fills 64 - 8 tokens
    batch = {"index": [0], "context_ids": [context], "references": [["word " * 50]]}
    rows, _ = scorer.step(model, batch)
    assert 0 < rows[0]["ref_tokens"] <= 8 and rows[0]["ref_logprob"] < 0


def test_truncation_keeps_the_template_suffix_and_room_to_generate(summary_setup):
    _, task, _, _, tokenizer = summary_setup
    encoder = PromptEncoder(tokenizer, task, max_length=64, answer_room=20)
    ids = encoder.prompt_ids("The council met on Monday. " * 40)
    assert len(ids) == 64 - 20
    assert tokenizer.decode(ids).endswith("\nTL;DR:") and encoder.truncated == 1
    assert cut_at_stop(" Vireo recalls kettles.\nMore text", ("\n",)) == "Vireo recalls kettles."


def test_loss_mask_covers_summary_tokens_and_end_of_text(summary_setup):
    _, task, splits, _, tokenizer = summary_setup
    encoder = PromptEncoder(tokenizer, task, 1024, answer_room=12)
    row = splits["train"][0]
    example = encoder.training_example(row)
    summary = encoder.encode(" " + row["references"][0]) + [tokenizer.eos_token_id]
    prompt = encoder.encode(task.prompt(row["text"]))
    assert example["input_ids"] == prompt + summary
    assert example["labels"] == [IGNORE_INDEX] * len(prompt) + summary


def test_multiple_reference_columns_become_references(tmp_path):
    rows = [{"dialogue": "#P1#: hi", "summary1": "P1 greets.", "summary2": "A greeting.",
             "summary3": ""}]
    path = tmp_path / "test.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows * 3))
    train = tmp_path / "dev.jsonl"  # splits with different columns, as in DialogSum's files
    train.write_text("".join(json.dumps({"dialogue": f"d{i}", "summary": "s", "topic": "t"})
                             + "\n" for i in range(20)))
    cfg = compose_config(tmp_path, "task=dialogsum", "task.splits.validation=null",
                         f"task.data_files={{train: {train}, test: {path}}}").task
    splits, _ = load_splits(cfg)
    assert splits["test"][0]["references"] == ["P1 greets.", "A greeting."]
    cfg.reference_fields = ["abstract"]
    with pytest.raises(UserError, match=r"none of the reference columns \['abstract'\]"):
        load_splits(cfg)


def test_left_pad_layout():
    ids, mask = generation.left_pad([[5, 6], [7]], pad_id=0)
    assert ids.tolist() == [[5, 6], [0, 7]] and mask.tolist() == [[1, 1], [0, 1]]
    assert torch.equal(mask.sum(-1), torch.tensor([2, 1]))
