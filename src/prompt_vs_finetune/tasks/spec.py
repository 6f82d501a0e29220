"""A task: how an example becomes a prompt, what the answer is, and the label set; the
checked form of a YAML file under conf/task/."""

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
    def from_config(cls, task_cfg, data_labels: list[str] | None = None) -> "Task":
        """The task of a checked `task` config group; `data_labels`: the label names found in
        the data, which a task without `labels:` takes and one with them must cover."""
        return cls(name=task_cfg.name, type=task_cfg.type,
                   template=task_cfg.template or task_cfg.templates[task_cfg.prompt],
                   target_template=task_cfg.target_template,
                   demo_separator=task_cfg.demo_separator, metrics=tuple(task_cfg.metrics),
                   labels=task_type(task_cfg.type).labels(task_cfg, data_labels),
                   stop=tuple(task_cfg.stop or ()))

    @property
    def kind(self) -> TaskType:
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
        """What every prompt has before and after its input (an input cut to fit keeps both)."""
        before, after = self.prompt("\x00").split("\x00", 1)
        return before, after

    def target(self, answer: str) -> str:
        """The text after the prompt: a label's verbalization or a summary (as a chat, the
        assistant's reply, which starts a line of its own: no leading space)."""
        text = self.target_template.replace("{answer}", answer)
        return text.lstrip() if self.chat else text

    def answer(self, row: dict) -> str:
        return self.kind.answer(self, row)

    def demonstration(self, row: dict) -> str:
        return self.prompt(row["text"]) + self.target(self.answer(row))

    def demo_prefix(self, demos: list[dict]) -> str:
        """The text every prompt starts with, for local and hosted models alike: the
        demonstrations, each followed by the separator (as a chat: the system turn, then each
        demonstration as a user turn and its reply)."""
        if self.chat:
            return self.chat.head + "".join(self.demonstration(d) + self.chat.turn
                                            for d in demos)
        return "".join(self.demonstration(d) + self.demo_separator for d in demos)
