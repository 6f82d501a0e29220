"""The token layout that training and scoring share.

A sequence is  prefix (demonstrations) + prompt(text) + answer [+ end-of-text when training].
Each part is encoded on its own, so the scorer can treat the prefix and the prompt as shared
prefixes and fine-tuning sees exactly the tokens the scorer scores.
"""

import logging
from functools import cached_property

from ..errors import UserError
from .spec import Task

log = logging.getLogger(__name__)

IGNORE_INDEX = -100  # label value the loss skips (prompt and padding positions)


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
        budget = self.max_length - longest_prompt - self.answer_room
        if not demos:  # a chat's system turn and first header (plain text: nothing)
            self.prefix_ids, self.demos_used = self.encode(self.task.demo_prefix([])), 0
            return 0
        for n in range(len(demos), 0, -1):
            ids = self.encode(self.task.demo_prefix(demos[:n]))
            if len(ids) <= budget:
                self.prefix_ids, self.demos_used = ids, n
                break
        else:
            self.prefix_ids, self.demos_used = [], 0
            if demos:
                first = len(self.encode(self.task.demo_prefix(demos[:1])))
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
            head_ids, tail_ids = self.template_ids
            ids = head_ids + self.encode(text)[:self.text_room(room)] + tail_ids
            self.truncated += 1
        return self.prefix_ids + ids

    @cached_property
    def template_ids(self) -> tuple[list[int], list[int]]:
        """The template's tokens before and after the input's text (encoded once)."""
        return tuple(self.encode(part) for part in self.task.prompt_parts())

    def text_room(self, room: int | None = None) -> int:
        """The tokens left for an input's text once the demos, the template and `room` for
        the answer have theirs; none is an error, raised when the layout is made (before any
        run opens), not at the first example scored."""
        room = self.answer_room if room is None else room
        keep = self.max_length - len(self.prefix_ids) - room - sum(map(len, self.template_ids))
        if keep <= 0:
            raise UserError(
                f"the prompt template and the answer do not fit the {self.max_length}-token "
                "context; shorten task.template, lower arm.k or max_new_tokens, or raise "
                "model.max_length")
        return keep

    def training_example(self, row: dict) -> dict:
        """prompt -> answer + end-of-text, with the loss on the answer tokens only."""
        answer = self.encode(self.task.target(self.task.answer(row)))
        answer = answer[: self.max_length // 2] + [self.eos_id]
        prompt = self.prompt_ids(row["text"], room=len(answer))
        return {"input_ids": prompt + answer,
                "labels": [IGNORE_INDEX] * len(prompt) + answer}


def prompt_layout(task: Task, tokenizer, max_length: int, answer_room: int | None,
                  demos: list[dict], test_texts: list[str]) -> tuple[PromptEncoder, int]:
    """The job's token layout: an encoder with as many of `demos` as fit before the test
    prompts (see `demo_room`), and how many were dropped. Benchmarks build theirs here too."""
    encoder = PromptEncoder(tokenizer, task, max_length, answer_room)
    dropped = encoder.set_demos(demos, demo_room(encoder, test_texts))
    encoder.text_room()
    return encoder, dropped


def demo_room(encoder: PromptEncoder, texts: list[str]) -> int:
    """The prompt length the few-shot demos must leave room for: the 95th percentile of the
    test prompts, so one very long input (a 900-token dialogue) does not cost every example
    its demos; the few longer prompts have their text cut to fit (data/truncated_inputs)."""
    lengths = sorted(len(encoder.encode(encoder.task.prompt(t))) for t in texts)
    return lengths[min(len(lengths) - 1, int(0.95 * len(lengths)))]
