"""A task: how an example becomes a prompt, what the answer is, and the label set.

Tasks are YAML files under conf/task/ (sharing their common fields through a `_base` file, as
lm-evaluation-harness tasks share theirs through `include:`); this is their checked form.
"""

from dataclasses import dataclass, field, replace

from ..errors import UserError
from .chat import ChatLayout

TASK_TYPES = ("classification", "generation")
VERBALIZERS = {  # task.verbalizer: how a label name in the data becomes the words scored
    "words": lambda name: " ".join(name.replace("_", " ").replace("-", " ").split()),
    "as_is": lambda name: name,
}


@dataclass(frozen=True)
class Task:
    name: str
    type: str  # classification | generation
    template: str
    target_template: str
    demo_separator: str
    metrics: tuple[str, ...]
    labels: dict[str, str] = field(default_factory=dict)  # label name -> verbalization
    stop: tuple[str, ...] = ()  # generation: strings that end an answer besides end-of-text
    chat: ChatLayout | None = None  # prompt.chat=true: the model's chat template (tasks/chat.py)

    @classmethod
    def from_config(cls, cfg, data_labels: list[str] | None = None) -> "Task":
        """The task of a checked config (checks.py). `data_labels`: the label names found in
        the data; a task without `labels:` takes them (verbalized by `task.verbalizer`), one
        with them must cover them."""
        template = cfg.template or cfg.templates[cfg.prompt]  # checked by checks.py
        labels = {}
        if cfg.type == "classification":
            labels = _labels(cfg, data_labels)
            _check_verbalizations(labels)
        return cls(name=cfg.name, type=cfg.type, template=template,
                   target_template=cfg.target_template, demo_separator=cfg.demo_separator,
                   metrics=tuple(cfg.metrics), labels=labels, stop=tuple(cfg.stop or ()))

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
        if self.type == "classification":
            return self.labels[row["label"]]
        return row["references"][0]

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


def _labels(cfg, data_labels: list[str] | None) -> dict[str, str]:
    """label name -> verbalization: `task.labels` as written, or the data's label names."""
    given = dict(cfg.labels or {})
    trap = next((x for pair in given.items() for x in pair if isinstance(x, bool)), None)
    if trap is not None:
        raise UserError(f"task.labels has a key or value read as the boolean {trap}: YAML reads "
                        "unquoted yes/no/on/off/true/false as booleans; quote it ('yes': ...), "
                        "or drop task.labels to take the labels from the data")
    if not given:
        if not data_labels:
            raise UserError(f"task '{cfg.name}' has no labels: set task.labels, or check "
                            "task.label_field names the data's label column")
        return {name: VERBALIZERS[cfg.verbalizer](name) for name in sorted(data_labels)}
    labels = {str(name): str(verbal) for name, verbal in given.items()}
    unknown = sorted(set(data_labels or ()) - set(labels))
    if unknown:
        shown = ", ".join(unknown[:5]) + (" ..." if len(unknown) > 5 else "")
        raise UserError(f"the data has {len(unknown)} label(s) not in task.labels: {shown}; "
                        "add them to task.labels (or drop task.labels to take every label "
                        "from the data), or fix task.label_field")
    return labels


def _check_verbalizations(labels: dict[str, str]) -> None:
    seen: dict[str, str] = {}
    for name, verbal in labels.items():
        if not verbal.strip():
            raise UserError(f"task.labels.{name} has an empty verbalization; give it words")
        if verbal in seen:
            raise UserError(f"labels '{seen[verbal]}' and '{name}' share the verbalization "
                            f"{verbal!r}; give each label its own words in task.labels")
        seen[verbal] = name
