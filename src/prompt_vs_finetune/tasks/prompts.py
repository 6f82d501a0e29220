"""The token layout training and scoring share: prefix (demonstrations) + prompt(text) +
answer [+ end-of-text when training], each part encoded on its own, so the scorer can share
the prefix and the prompt, and fine-tuning sees exactly the tokens the scorer scores."""

import logging
from functools import cached_property

from ..errors import UserError
from .spec import Task

log = logging.getLogger(__name__)

IGNORE_INDEX = -100  # label value the loss skips (prompt and padding positions)


class PromptEncoder:
    """Token ids for prompts and answers. `answer_room` tokens are kept free after every test
    prompt: the longest label (plus end-of-text), or `max_new_tokens` for a decoded answer."""

    def __init__(self, tokenizer, task: Task, max_length: int, answer_room: int | None = None):
        self.tokenizer = tokenizer
        self.task = task
        self.max_length = max_length
        self.eos_id = tokenizer.eos_token_id
        self.choice_ids = [self.encode(task.target(verbal)) for verbal in task.labels.values()]
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
        return how many were dropped (from the end). None fitting is an error, not zero-shot."""
        budget = self.max_length - longest_prompt - self.answer_room
        for n in range(len(demos), -1, -1):  # none: a chat's system turn (plain text: nothing)
            ids = self.encode(self.task.demo_prefix(demos[:n]))
            if n == 0 or len(ids) <= budget:
                break
        if demos and n == 0:
            first = len(self.encode(self.task.demo_prefix(demos[:1])))
            raise UserError(f"not even one demonstration fits: the first takes {first} tokens, "
                            f"and {max(budget, 0)} of the {self.max_length}-token context are "
                            f"left after a {longest_prompt}-token prompt and {self.answer_room} "
                            "for the answer; use a model with a longer context, shorter inputs, "
                            "or arm=zero_shot")
        self.prefix_ids, self.demos_used = ids, n
        if dropped := len(demos) - n:
            log.warning("dropped %d of %d demonstrations that do not fit the %d-token context",
                        dropped, len(demos), self.max_length)
        return dropped

    def prompt_ids(self, text: str, room: int | None = None) -> list[int]:
        """prefix + prompt(text), leaving `room` tokens (default: answer_room) free: the text is
        cut from its end when needed (counted in `truncated`), the template's suffix kept."""
        room = self.answer_room if room is None else room
        ids = self.encode(self.task.prompt(text))
        if len(ids) > self.max_length - len(self.prefix_ids) - room:
            head_ids, tail_ids = self.template_ids
            ids = head_ids + self.encode(text)[:self.text_room(room)] + tail_ids
            self.truncated += 1
        return self.prefix_ids + ids

    @cached_property
    def template_ids(self) -> tuple[list[int], list[int]]:
        """The template's tokens before and after the input's text (encoded once)."""
        return tuple(self.encode(part) for part in self.task.prompt_parts())

    def text_room(self, room: int | None = None) -> int:
        """The tokens left for an input's text once the demos, the template and `room` have
        theirs; none is an error, raised when the layout is made (before any run opens)."""
        room = self.answer_room if room is None else room
        keep = self.max_length - len(self.prefix_ids) - room - sum(map(len, self.template_ids))
        if keep <= 0:
            raise UserError(f"the prompt template and the answer do not fit the {self.max_length}"
                            "-token context; shorten task.template, lower arm.k or "
                            "max_new_tokens, or raise model.max_length")
        return keep

    def training_example(self, row: dict) -> dict:
        """prompt -> answer + end-of-text, with the loss on the answer tokens only."""
        answer = self.encode(self.task.target(self.task.answer(row)))
        answer = answer[: self.max_length // 2] + [self.eos_id]
        prompt = self.prompt_ids(row["text"], room=len(answer))
        return {"input_ids": prompt + answer, "labels": [IGNORE_INDEX] * len(prompt) + answer}


def prompt_layout(task: Task, tokenizer, max_length: int, answer_room: int | None,
                  demos: list[dict], test_texts: list[str]) -> tuple[PromptEncoder, int]:
    """An encoder with as many `demos` as fit before the test prompts' 95th percentile (one
    900-token dialogue does not cost every example its demos; longer prompts have their text
    cut to fit: data/truncated_inputs), and how many demos were dropped."""
    encoder = PromptEncoder(tokenizer, task, max_length, answer_room)
    lengths = sorted(len(encoder.encode(task.prompt(t))) for t in test_texts)
    dropped = encoder.set_demos(demos, lengths[min(len(lengths) - 1, int(0.95 * len(lengths)))])
    encoder.text_room()
    return encoder, dropped
