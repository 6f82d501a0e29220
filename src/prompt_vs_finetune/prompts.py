"""Few-shot demonstrations and the token layout that training and scoring share.

A sequence is  prefix (demonstrations) + prompt(text) + answer [+ end-of-text when training].
Each part is encoded on its own, so the scorer can treat the prefix and the prompt as shared
prefixes and fine-tuning sees exactly the tokens the scorer scores.
"""

import logging
import random
from collections import defaultdict

from datasets import Dataset

from .errors import UserError
from .task import Task

log = logging.getLogger(__name__)

IGNORE_INDEX = -100  # label value the loss skips (prompt and padding positions)


def select_demos(pool: Dataset, k: int, selection: str, seed: int,
                 order_seed: int | None = None) -> list[dict]:
    """k demonstrations from the train pool: which ones is fixed by `seed`, their order by
    `order_seed` (so prompt-order sensitivity can be swept with the same demos)."""
    if k == 0:
        return []
    if k > len(pool):
        raise UserError(f"arm.k={k} but the train pool has {len(pool)} examples; lower arm.k")
    rng = random.Random(seed)
    if selection == "class_balanced" and "label" not in pool.column_names:
        log.info("arm.selection=class_balanced needs labels; a generation task draws at random")
        selection = "random"
    if selection == "random":
        chosen = rng.sample(range(len(pool)), k)
    elif selection == "class_balanced":
        chosen = _class_balanced(pool["label"], k, rng)
    else:
        raise UserError(f"unknown arm.selection '{selection}'; use random or class_balanced")
    random.Random(seed if order_seed is None else order_seed).shuffle(chosen)
    return [pool[i] for i in chosen]


def _class_balanced(labels: list[str], k: int, rng: random.Random) -> list[int]:
    """Round-robin over the labels (in a seeded order): label counts differ by at most one."""
    by_label: dict[str, list[int]] = defaultdict(list)
    for index, label in enumerate(labels):
        by_label[label].append(index)
    order = sorted(by_label)
    rng.shuffle(order)
    for label in order:
        rng.shuffle(by_label[label])
    chosen: list[int] = []
    depth = 0
    while len(chosen) < k:
        for label in order:
            if depth < len(by_label[label]) and len(chosen) < k:
                chosen.append(by_label[label][depth])
        depth += 1
    return chosen


class PromptEncoder:
    """Token ids for prompts and answers, identical for training and scoring.

    `answer_room` tokens are kept free after every test prompt: the longest label (plus
    end-of-text) for classification, `max_new_tokens` for generation.
    """

    def __init__(self, tokenizer, task: Task, max_length: int, answer_room: int | None = None):
        self.tokenizer = tokenizer
        self.task = task
        self.max_length = max_length
        self.eos_id = tokenizer.eos_token_id
        self.choice_ids = [self.encode(task.target(task.labels[name]))
                           for name in task.label_names]
        if answer_room is None:
            if not self.choice_ids:
                raise ValueError("a generation task needs answer_room (max_new_tokens)")
            answer_room = max(len(ids) for ids in self.choice_ids) + 1
        self.answer_room = answer_room
        self.prefix_ids: list[int] = []
        self.demos_used = 0
        self.truncated = 0

    def encode(self, text: str) -> list[int]:
        return self.tokenizer(text, add_special_tokens=False)["input_ids"]

    def set_demos(self, demos: list[dict], longest_prompt: int) -> int:
        """Use as many demos as fit before a prompt of `longest_prompt` tokens and the answer;
        return how many were dropped (from the end of the list). Not even one fitting is an
        error: the few-shot arm would silently become zero-shot."""
        sep = self.task.demo_separator
        rendered = [self.task.demonstration(d) for d in demos]
        budget = self.max_length - longest_prompt - self.answer_room
        for n in range(len(rendered), 0, -1):
            ids = self.encode(sep.join(rendered[:n]) + sep)
            if len(ids) <= budget:
                self.prefix_ids, self.demos_used = ids, n
                break
        else:
            self.prefix_ids, self.demos_used = [], 0
            if rendered:
                first = len(self.encode(rendered[0] + sep))
                raise UserError(
                    f"not even one demonstration fits: the first takes {first} tokens, and "
                    f"{max(budget, 0)} of the {self.max_length}-token context are left after a "
                    f"{longest_prompt}-token prompt and {self.answer_room} for the answer; "
                    "use a model with a longer context, shorter inputs, or arm=zero_shot")
        dropped = len(demos) - self.demos_used
        if dropped:
            log.warning("dropped %d of %d demonstrations that do not fit the %d-token context",
                        dropped, len(demos), self.max_length)
        return dropped

    def prompt_ids(self, text: str, room: int | None = None) -> list[int]:
        """prefix + prompt(text), leaving `room` tokens (default: answer_room) free; the text
        is cut from its end when needed, so the template's suffix always survives (counted
        in `truncated`)."""
        room = self.answer_room if room is None else room
        ids = self.encode(self.task.prompt(text))
        budget = self.max_length - len(self.prefix_ids) - room
        if len(ids) > budget:
            head, tail = self.task.template.split("{text}", 1)
            head_ids, tail_ids = self.encode(head), self.encode(tail)
            keep = budget - len(head_ids) - len(tail_ids)
            if keep <= 0:
                raise UserError(
                    f"the prompt template and the answer do not fit the {self.max_length}-token "
                    "context; shorten task.template, lower arm.k or max_new_tokens"
                )
            ids = head_ids + self.encode(text)[:keep] + tail_ids
            self.truncated += 1
        return self.prefix_ids + ids

    def training_example(self, row: dict) -> dict:
        """prompt -> answer + end-of-text, with the loss on the answer tokens only."""
        answer = self.encode(self.task.target(self.task.answer(row)))
        answer = answer[: self.max_length // 2] + [self.eos_id]
        prompt = self.prompt_ids(row["text"], room=len(answer))
        return {"input_ids": prompt + answer,
                "labels": [IGNORE_INDEX] * len(prompt) + answer}
