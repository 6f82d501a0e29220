"""A task's prompts: the `Task` (a checked conf/task/ file), its text layout (plain or the
model's chat template), and the token layout training and scoring share (docs/design.md)."""

import logging
from dataclasses import dataclass, field, replace
from functools import cached_property

from ..errors import UserError
from .task_types import TaskType, task_type

log = logging.getLogger(__name__)

IGNORE_INDEX = -100  # label value the loss skips (prompt and padding positions)

_USER, _REPLY, _NEXT = "\x00pvf-user\x00", "\x00pvf-reply\x00", "\x00pvf-next\x00"


@dataclass(frozen=True)
class ChatLayout:
    head: str  # before the first user message: the system turn and the user's header
    reply: str  # after a user message: its end and the assistant's header
    turn: str  # after an assistant reply: its end and the next user's header


def chat_layout(tokenizer, system: str | None, model_name: str) -> ChatLayout:
    """`prompt.chat=true`'s layout, cut once from the template rendered around placeholders:
    every arm lays out what `apply_chat_template` gives. `system` None: the template's default."""
    if not getattr(tokenizer, "chat_template", None):
        raise UserError(f"prompt.chat=true needs a chat template, and the tokenizer of "
                        f"model={model_name} has none; set prompt.chat=false (plain text), or "
                        "use an instruct model such as model=smollm2")
    messages = [{"role": "system", "content": system}] if system is not None else []
    messages += [{"role": "user", "content": _USER}, {"role": "assistant", "content": _REPLY},
                 {"role": "user", "content": _NEXT}]
    text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    head, _, rest = text.partition(_USER)
    reply, _, rest = rest.partition(_REPLY)
    turn, _, last = rest.partition(_NEXT)
    if any(text.count(mark) != 1 for mark in (_USER, _REPLY, _NEXT)) or last != reply:
        raise UserError(f"the chat template of model={model_name} does not lay out every turn "
                        "the same way (it rewrites message contents or the last turn), so "
                        "prompts cannot share it; set prompt.chat=false")
    return ChatLayout(head=head, reply=reply, turn=turn)


@dataclass(frozen=True)
class Task:
    name: str
    type: str  # task.type: a built-in task type's name, or a TaskType's import path
    template: str
    target_template: str
    demo_separator: str
    metrics: tuple[str, ...]
    labels: dict[str, str] = field(default_factory=dict)  # label name -> verbalization
    stop: tuple[str, ...] = ()  # generation: strings that end an answer besides end-of-text
    chat: ChatLayout | None = None  # prompt.chat=true: the model's chat template (chat_layout)

    @classmethod
    def from_config(cls, task_cfg, data_labels: list[str] | None = None) -> "Task":
        """`data_labels`: the data's label names, which `task.labels` must cover (or is)."""
        return cls(name=task_cfg.name, type=task_cfg.type,
                   template=task_cfg.template or task_cfg.templates[task_cfg.prompt],
                   target_template=task_cfg.target_template, demo_separator=task_cfg.demo_separator,
                   metrics=tuple(task_cfg.metrics), stop=tuple(task_cfg.stop or ()),
                   labels=task_type(task_cfg.type).labels(task_cfg, data_labels))

    @property
    def kind(self) -> TaskType:
        return task_type(self.type)

    @property
    def label_names(self) -> list[str]:
        return list(self.labels)

    def with_chat(self, layout: ChatLayout | None) -> "Task":
        return replace(self, chat=layout)

    def prompt(self, text: str) -> str:
        """The prompt for one input (braces in it are safe); a chat's runs to the reply header."""
        return self.template.replace("{text}", text) + (self.chat.reply if self.chat else "")

    def prompt_parts(self) -> tuple[str, str]:
        """What every prompt has before and after its input (an input cut to fit keeps both)."""
        return tuple(self.prompt("\x00").split("\x00", 1))

    def target(self, answer: str) -> str:
        """The text after the prompt (label words or a summary); a chat reply has no lead space."""
        text = self.target_template.replace("{answer}", answer)
        return text.lstrip() if self.chat else text

    def answer(self, row: dict) -> str:
        return self.kind.answer(self, row)

    def demonstration(self, row: dict) -> str:
        return self.prompt(row["text"]) + self.target(self.answer(row))

    def demo_prefix(self, demos: list[dict]) -> str:
        """What every prompt starts with, local or hosted (as a chat: system turn, demo turns)."""
        head, sep = (self.chat.head, self.chat.turn) if self.chat else ("", self.demo_separator)
        return head + "".join(self.demonstration(d) + sep for d in demos)


class PromptEncoder:
    """Token ids for prompts and answers, `answer_room` tokens free after every test prompt:
    `max_new_tokens` for a decoded answer, by default the longest label and end-of-text."""

    def __init__(self, tokenizer, task: Task, max_length: int, answer_room: int | None = None):
        self.tokenizer, self.task, self.max_length = tokenizer, task, max_length
        self.eos_id = tokenizer.eos_token_id
        self.choice_ids = [self.encode(task.target(verbal)) for verbal in task.labels.values()]
        self.answer_room = answer_room if answer_room is not None \
            else max(map(len, self.choice_ids)) + 1
        self.prefix_ids: list[int] = []
        self.demos_used = self.truncated = 0  # truncated: prompts whose text was cut to fit

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
        """prefix + prompt(text), `room` (default answer_room) left: the text cut (`truncated`)."""
        room = self.answer_room if room is None else room
        ids = self.encode(self.task.prompt(text))
        if len(ids) > self.max_length - len(self.prefix_ids) - room:
            head_ids, tail_ids = self.template_ids
            ids = head_ids + self.encode(text)[:self.text_room(room)] + tail_ids
            self.truncated += 1
        return self.prefix_ids + ids

    @cached_property
    def template_ids(self) -> tuple[list[int], list[int]]:
        return tuple(self.encode(part) for part in self.task.prompt_parts())

    def text_room(self, room: int | None = None) -> int:
        """The tokens left for an input's text; none is an error (raised by prompt_layout)."""
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
    """An encoder with as many `demos` as fit before the test prompts' 95th percentile (one long
    dialogue does not cost every example its demos: longer ones are cut), and the demos dropped."""
    encoder = PromptEncoder(tokenizer, task, max_length, answer_room)
    lengths = sorted(len(encoder.encode(task.prompt(t))) for t in test_texts)
    dropped = encoder.set_demos(demos, lengths[min(len(lengths) - 1, int(0.95 * len(lengths)))])
    encoder.text_room()
    return encoder, dropped
