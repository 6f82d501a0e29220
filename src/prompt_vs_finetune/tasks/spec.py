"""A task: how an example becomes a prompt, what the answer is, and the label set.

Tasks are YAML files under conf/task/ (sharing their common fields through a `_base` file, as
lm-evaluation-harness tasks share theirs through `include:`); this is their checked form.
"""

from dataclasses import dataclass, field, replace

from .chat import ChatLayout
from .task_types import TaskType, task_type


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
    chat: ChatLayout | None = None  # prompt.chat=true: the model's chat template (tasks/chat.py)

    @classmethod
    def from_config(cls, cfg, data_labels: list[str] | None = None) -> "Task":
        """The task of a checked config (config.py). `data_labels`: the label names found in
        the data; a task without `labels:` takes them (verbalized by `task.verbalizer`), one
        with them must cover them."""
        template = cfg.template or cfg.templates[cfg.prompt]  # checked by config.py
        return cls(name=cfg.name, type=cfg.type, template=template,
                   target_template=cfg.target_template, demo_separator=cfg.demo_separator,
                   metrics=tuple(cfg.metrics), labels=task_type(cfg.type).labels(cfg, data_labels),
                   stop=tuple(cfg.stop or ()))

    @property
    def kind(self) -> TaskType:
        """What this task's type does differently (tasks/task_types.py)."""
        return task_type(self.type)

    @property
    def label_names(self) -> list[str]:
        return list(self.labels)

    def with_chat(self, layout: ChatLayout | None) -> "Task":
        """The same task laid out as a chat (`layout`), or as plain text (None)."""
        return replace(self, chat=layout)

    def prompt(self, text: str) -> str:
        """The prompt for one input (str.replace, so braces in the text are safe); as a chat,
        the user's message up to the assistant's header."""
        body = self.template.replace("{text}", text)
        return body + self.chat.reply if self.chat else body

    def prompt_parts(self) -> tuple[str, str]:
        """What every prompt has before and after its input (an input cut to fit the context
        keeps both)."""
        before, after = self.prompt("\x00").split("\x00", 1)
        return before, after

    def target(self, answer: str) -> str:
        """The text after the prompt: a label's verbalization or a summary (as a chat, the
        assistant's reply, which starts a line of its own: no leading space)."""
        text = self.target_template.replace("{answer}", answer)
        return text.lstrip() if self.chat else text

    def answer(self, row: dict) -> str:
        """What a fine-tuned model learns to write for a row (and a demonstration shows)."""
        return self.kind.answer(self, row)

    def demonstration(self, row: dict) -> str:
        return self.prompt(row["text"]) + self.target(self.answer(row))

    def demo_prefix(self, demos: list[dict]) -> str:
        """The text every prompt starts with: the demonstrations, each followed by the
        separator. The one layout of a few-shot prompt, for local and hosted models alike.
        As a chat: the system turn, then each demonstration as a user turn and its reply."""
        if self.chat:
            return self.chat.head + "".join(self.demonstration(d) + self.chat.turn
                                            for d in demos)
        return "".join(self.demonstration(d) + self.demo_separator for d in demos)
