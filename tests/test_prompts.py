from collections import Counter

import pytest

from prompt_vs_finetune.errors import UserError
from prompt_vs_finetune.models.loading import build_tiny
from prompt_vs_finetune.tasks import IGNORE_INDEX, PromptEncoder, Task, load_splits, select_demos

from .conftest import compose_config


@pytest.fixture(scope="module")
def sample(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("prompts")
    cfg = compose_config(tmp, "task=intent_sample", "model=tiny")
    task = Task.from_config(cfg.task)
    splits, _ = load_splits(cfg.task)
    from transformers import AutoTokenizer

    tiny = dict(cfg.model.tiny, n_layer=1, n_embd=16, n_head=2, vocab_size=400)
    path = build_tiny(tiny, [task.prompt(t) for t in splits["train"]["text"]], tmp / "tiny")
    return task, splits, AutoTokenizer.from_pretrained(path)


def test_demos_come_from_train_only_and_are_seeded(sample):
    task, splits, _ = sample
    test_texts = set(splits["test"]["text"])
    for selection in ("random", "class_balanced"):
        demos = select_demos(splits["train"], 8, selection, seed=3)
        assert not {d["text"] for d in demos} & test_texts
        assert {d["text"] for d in demos} <= set(splits["train"]["text"])
        assert demos == select_demos(splits["train"], 8, selection, seed=3)
        assert demos != select_demos(splits["train"], 8, selection, seed=4)


def test_class_balanced_covers_labels_evenly(sample):
    _, splits, _ = sample
    counts = Counter(d["label"] for d in select_demos(splits["train"], 16, "class_balanced", 0))
    assert len(counts) == 14 and max(counts.values()) - min(counts.values()) <= 1
    five = select_demos(splits["train"], 5, "class_balanced", 1)
    assert len({d["label"] for d in five}) == 5


def test_order_seed_reorders_the_same_demos(sample):
    _, splits, _ = sample
    a = select_demos(splits["train"], 8, "class_balanced", seed=0, order_seed=0)
    b = select_demos(splits["train"], 8, "class_balanced", seed=0, order_seed=1)
    assert sorted(d["text"] for d in a) == sorted(d["text"] for d in b) and a != b


def test_k_larger_than_pool_is_an_error(sample):
    _, splits, _ = sample
    with pytest.raises(UserError, match="arm.k=9999"):
        select_demos(splits["train"], 9999, "random", 0)


def test_loss_mask_covers_the_answer_and_end_of_text_only(sample):
    task, _, tokenizer = sample
    encoder = PromptEncoder(tokenizer, task, max_length=256)
    example = encoder.training_example({"text": "I was charged twice",
                                        "label": "transaction_charged_twice"})
    prompt = tokenizer(task.prompt("I was charged twice"), add_special_tokens=False)["input_ids"]
    answer = tokenizer(" transaction charged twice", add_special_tokens=False)["input_ids"]
    assert example["input_ids"] == prompt + answer + [tokenizer.eos_token_id]
    assert example["labels"] == [IGNORE_INDEX] * len(prompt) + answer + [tokenizer.eos_token_id]


def test_demos_that_do_not_fit_are_dropped_and_counted(sample):
    task, splits, tokenizer = sample
    demos = select_demos(splits["train"], 8, "random", 0)
    roomy = PromptEncoder(tokenizer, task, max_length=1024)
    assert roomy.set_demos(demos, longest_prompt=30) == 0 and roomy.demos_used == 8
    assert tokenizer.decode(roomy.prefix_ids).endswith("\n\n")
    tight = PromptEncoder(tokenizer, task, max_length=120)
    dropped = tight.set_demos(demos, longest_prompt=30)
    assert 0 < dropped < 8 and tight.demos_used == 8 - dropped
    assert len(tight.prefix_ids) + 30 + tight.answer_room <= 120


def test_long_input_is_truncated_keeping_the_template_suffix(sample):
    task, _, tokenizer = sample
    encoder = PromptEncoder(tokenizer, task, max_length=40)
    ids = encoder.prompt_ids("refund please " * 50)
    assert len(ids) + encoder.answer_room <= 40
    assert tokenizer.decode(ids).endswith("\nIntent:") and encoder.truncated == 1


def test_no_demo_fitting_is_an_error_not_a_silent_zero_shot(sample):
    task, splits, tokenizer = sample
    demos = select_demos(splits["train"], 4, "random", 0)
    cramped = PromptEncoder(tokenizer, task, max_length=40)
    with pytest.raises(UserError, match="not even one demonstration fits"):
        cramped.set_demos(demos, longest_prompt=30)
    assert cramped.set_demos([], longest_prompt=30) == 0  # zero-shot: nothing to fit


CHATML = ("{% for m in messages %}{% if loop.first and m['role'] != 'system' %}"
          "{{ '<|im_start|>system\nBe brief.<|im_end|>\n' }}{% endif %}"
          "{{ '<|im_start|>' + m['role'] + '\n' + m['content'] + '<|im_end|>\n' }}{% endfor %}"
          "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}")


@pytest.fixture
def chat_tokenizer(sample):
    _, _, tokenizer = sample
    tokenizer.chat_template = CHATML
    yield tokenizer
    tokenizer.chat_template = None


@pytest.mark.parametrize("system", [None, "You sort support messages."])
def test_chat_layout_is_the_tokenizers_own_template(sample, chat_tokenizer, system):
    """prompt.chat=true: the demos are earlier turns and the prompt the last user message, as
    apply_chat_template renders the same conversation; the answer is the assistant's reply."""
    from prompt_vs_finetune.tasks.prompts import chat_layout

    task, splits, _ = sample
    chat = task.with_chat(chat_layout(chat_tokenizer, system, "tiny"))
    demos, text = select_demos(splits["train"], 3, "random", seed=0), splits["test"][0]["text"]
    conversation = [] if system is None else [{"role": "system", "content": system}]
    for d in demos:
        conversation += [{"role": "user", "content": task.prompt(d["text"])},
                         {"role": "assistant", "content": task.labels[d["label"]]}]
    conversation.append({"role": "user", "content": task.prompt(text)})
    rendered = chat_tokenizer.apply_chat_template(conversation, tokenize=False,
                                                  add_generation_prompt=True)
    assert chat.demo_prefix(demos) + chat.prompt(text) == rendered
    assert chat.target("card arrival") == "card arrival"  # no leading space: a line of its own
    head = "Be brief." if system is None else system
    assert chat.demo_prefix([]).startswith(f"<|im_start|>system\n{head}<|im_end|>\n")

    encoder = PromptEncoder(chat_tokenizer, chat, 1024)
    encoder.set_demos([], longest_prompt=20)  # zero-shot: the system turn is the prefix
    ids = encoder.prompt_ids(text)
    assert chat_tokenizer.decode(ids) == chat.demo_prefix([]) + chat.prompt(text)
    example = encoder.training_example(splits["train"][0])  # fine-tuned arms: the same layout
    answer = chat.labels[splits["train"][0]["label"]]
    assert example["input_ids"][:len(ids) - len(encoder.encode(chat.prompt(text)))] == \
        encoder.prefix_ids
    assert chat_tokenizer.decode([t for t in example["labels"] if t != IGNORE_INDEX]) == \
        answer + chat_tokenizer.eos_token


def test_chat_is_refused_without_a_template_or_with_an_uneven_one(sample, chat_tokenizer):
    from prompt_vs_finetune.tasks.prompts import chat_layout

    _, _, tokenizer = sample
    chat_tokenizer.chat_template = None
    with pytest.raises(UserError, match=r"^prompt.chat=true needs a chat template, and the "
                                        r"tokenizer of model=tiny has none; set prompt.chat="):
        chat_layout(tokenizer, None, "tiny")
    chat_tokenizer.chat_template = "{% for m in messages %}{{ m['content'] | upper }}{% endfor %}"
    with pytest.raises(UserError, match="does not lay out every turn the same way"):
        chat_layout(tokenizer, None, "tiny")
