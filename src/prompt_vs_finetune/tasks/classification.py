"""Classification: one label per text, out of a fixed set. A local model ranks the labels by
likelihood; a hosted model's reply is matched onto them (none matched: wrong, and unparsed)."""

import re
from collections import Counter

from ..errors import UserError
from ..metrics import LOCAL, UNPARSED, Key, accuracy, consistency, macro_f1
from .task_types import TaskType, answer_likelihood, log_table, text_of

VERBALIZERS = {  # task.verbalizer: how a label name in the data becomes the words scored
    "words": lambda name: " ".join(name.replace("_", " ").replace("-", " ").split()),
    "as_is": lambda name: name,
}
NO_LABEL = "<unparsed>"  # a reply that named no label: a prediction, never a class
CLASSIFY = "Classify the text. Reply with exactly one of these labels and nothing else:\n{}"

KEYS = {
    "test/accuracy": Key("share of test examples given their gold label (ranked per "
                         "scorer.length_norm: per character by default)"),
    "test/macro_f1": Key("F1 averaged over gold labels; an unparsed reply is wrong, not a class"),
    "test/accuracy_sum": Key("accuracy, ranked by summed log-likelihood (lm-eval's acc)", LOCAL),
    "test/accuracy_char": Key("accuracy, ranked by log-likelihood per character (acc_norm)", LOCAL),
    "test/accuracy_contextual": Key("accuracy, ranked by contextual calibration (Zhao et al. "
                                    "2021)", LOCAL),
    "test/accuracy_pmi": Key("accuracy, ranked by domain-conditional PMI (Holtzman et al. 2021)",
                             LOCAL),
    "test/ece": Key("expected calibration error (15 bins) of the softmax over the labels' summed "
                    "log-likelihoods (calibrated ones when scorer.calibration is set)", LOCAL),
    "test/unparsed_rate": Key("share of replies that named no label (0 when ranking labels)"),
    "data/n_classes": Key("labels the task ranks or asks for (1 / n_classes: chance accuracy)"),
    "data/classes_covered": Key("labels among the examples counted in data/n_labels"),
    "data/test_unseen_labels": Key("test examples whose gold label no labelled example has"),
    "val/accuracy": Key("accuracy on the budget's validation part (the report chooses on it)",
                        LOCAL, fitted_only=True),
    "hybrid/pseudo_label_accuracy": Key("share of the teacher's labels equal to the gold ones",
                                        optional=True, fitted_only=True),
    "hybrid/kept_accuracy": Key("the same over the kept labels (what the student learns from)",
                                optional=True, fitted_only=True),
}


class Classification(TaskType):
    answer_column = "label"
    metric_names = ("accuracy", "macro_f1")
    per_example = "accuracy"
    quality = "test/accuracy"
    decodes = False
    keys = KEYS

    def answer_feature(self):
        from datasets import Value
        return Value("string")

    def row_maker(self, split, task_cfg, source: str):
        from datasets import ClassLabel
        text_field, label_field = task_cfg.text_field, task_cfg.label_field
        if label_field not in split.column_names:
            raise UserError(f"column '{label_field}' (task.label_field) not found in "
                            f"{source}; available columns: {', '.join(split.column_names)}")
        feature = split.features[label_field]
        names = feature.names if isinstance(feature, ClassLabel) else None

        def to_row(row):
            label = row[label_field]
            if isinstance(label, (list, dict)):
                raise UserError(f"a label in {source} is a {type(label).__name__} "
                                f"({str(label)[:60]}); a label is one name per row: check "
                                "task.label_field and the data")
            if names is not None and label is not None:
                label = names[int(label)]
            elif isinstance(label, float) and label.is_integer():
                label = int(label)  # 3.0: an integer column with a blank cell; "3" elsewhere
            return {"text": text_of(row[text_field]), "label": text_of(label)}

        return to_row

    def labels(self, task_cfg, data_labels) -> dict[str, str]:
        """`task.labels`, covering the data's labels, or those verbalized (`task.verbalizer`)."""
        given = dict(task_cfg.labels or {})
        trap = next((x for pair in given.items() for x in pair if isinstance(x, bool)), None)
        if trap is not None:
            raise UserError(f"task.labels has a key or value read as the boolean {trap}: YAML "
                            "reads unquoted yes/no/on/off/true/false as booleans; quote it "
                            "('yes': ...), or drop task.labels to take the labels from the data")
        if given:
            labels = {str(name): str(verbal) for name, verbal in given.items()}
        elif data_labels:
            labels = {name: VERBALIZERS[task_cfg.verbalizer](name) for name in sorted(data_labels)}
        else:
            raise UserError(f"task '{task_cfg.name}' has no labels: set task.labels, or check "
                            "task.label_field names the data's label column")
        if unknown := sorted(set(data_labels or ()) - set(labels)):
            shown = ", ".join(unknown[:5]) + (" ..." if len(unknown) > 5 else "")
            raise UserError(f"the data has {len(unknown)} label(s) not in task.labels: {shown}; "
                            "add them to task.labels (or drop task.labels to take every label "
                            "from the data), or fix task.label_field")
        seen: dict[str, str] = {}
        for name, verbal in labels.items():
            if not verbal.strip():
                raise UserError(f"task.labels.{name} has an empty verbalization; give it words")
            if (first := seen.setdefault(verbal, name)) != name:
                raise UserError(f"labels '{first}' and '{name}' share the verbalization "
                                f"{verbal!r}; give each label its own words in task.labels")
        return labels

    def check_task(self, task) -> None:
        if len(task.labels) < 2:
            raise UserError(f"task '{task.name}' has {len(task.labels)} class(es) "
                            f"({', '.join(task.labels) or 'none'}): any classifier scores 1.0 "
                            "on it; check task.label_field and the data, or list task.labels")

    def check_config(self, c) -> None:
        c.choice("task.verbalizer", tuple(VERBALIZERS))
        c.choice("scorer.length_norm", ("none", "token", "char"))
        c.choice("scorer.calibration", ("none", "contextual", "pmi"))
        if not c.value("scorer.content_free"):
            c.fail("scorer.content_free", "is empty",
                   'list content-free inputs, e.g. ["N/A", "", "[MASK]"]')
        c.boolean("scorer.share_prefix")
        c.integer("scorer.batch_size", 1)
        c.integer("scorer.examples_per_batch", 1)
        c.integer("scorer.max_batch_tokens", 1, null=True)

    def answer(self, task, row: dict) -> str:
        return task.labels[row["label"]]

    def score(self, task, rows: list[dict]) -> tuple[dict[str, float], list[float]]:
        values = metrics(task.metrics, rows).items()
        return {f"test/{name}": value for name, value in values}, self.each(rows)

    def each(self, rows: list[dict]) -> list[float]:
        return [float(r["predicted"] == r["label"]) for r in rows]

    def dashboard(self) -> tuple[str, ...]:
        return ("test/accuracy", "test/macro_f1")

    def instruction(self, task) -> str:
        return CLASSIFY.format("\n".join(f"- {v.strip()}" for v in task.labels.values()))

    def read_replies(self, task, test, replies, max_tokens: int) -> list[dict]:
        match, names = label_matcher(task), task.label_names
        return [{"index": i, "label": names.index(gold), "predicted": match(reply.text),
                 "reply": reply.text}
                for i, (gold, reply) in enumerate(zip(test["label"], replies, strict=True))]

    def hidden(self, task, text: str) -> dict:
        return {"text": text, "label": task.label_names[0]}

    def taught(self, task, rows: list[dict]) -> tuple[list, list[float]]:
        """Confidence: a local teacher's margin over the runner-up label; 1 for a hosted reply."""
        names = [None if r["predicted"] is None else task.label_names[r["predicted"]] for r in rows]
        return names, [0.0 if r["predicted"] is None else float(r.get("margin", 1.0)) for r in rows]

    def vote(self, runs: list[dict]) -> tuple[list, list[float]]:
        """The majority label, and the share of prompts that agree with it."""
        if len(runs) == 1:
            return super().vote(runs)
        tops = [Counter(v for v in votes if v is not None).most_common(1) or [(None, 0)]
                for votes in zip(*(r["outputs"] for r in runs), strict=True)]
        return [top[0][0] for top in tops], [top[0][1] / len(runs) for top in tops]

    def log_predictions(self, task, texts: list[str], rows: list[dict], title: str) -> None:
        """predictions.csv (text, gold, predicted, extras) and confusion_matrix.png."""
        import mlflow
        import pandas as pd
        from matplotlib.figure import Figure  # no pyplot: no display, no figure to close
        from sklearn.metrics import ConfusionMatrixDisplay
        names = [*task.label_names, NO_LABEL]
        predicted = [names[-1 if r["predicted"] is None else r["predicted"]] for r in rows]
        table = pd.DataFrame({"text": [texts[r["index"]] for r in rows],
                              "gold": [names[r["label"]] for r in rows], "predicted": predicted,
                              **{extra: [r[extra] for r in rows] for extra in
                                 ("score", "gold_logprob", "reply") if extra in rows[0]}})
        log_table(table)
        shown = [*task.label_names, *([NO_LABEL] if NO_LABEL in predicted else [])]
        size = max(6.0, 0.18 * len(shown) + 4)
        ax = Figure(figsize=(size, size)).subplots()
        ConfusionMatrixDisplay.from_predictions(
            table["gold"], table["predicted"], labels=shown, ax=ax, colorbar=False,
            include_values=len(shown) <= 20, xticks_rotation="vertical")
        ax.set_title(title)
        ax.figure.tight_layout()
        mlflow.log_figure(ax.figure, "confusion_matrix.png")


TASK_TYPE = Classification()


def metrics(names: tuple[str, ...], rows: list[dict]) -> dict[str, float]:
    """The metrics `names` and the scorer's (rankings, ECE, perplexity); predicted None: wrong."""
    gold = [r["label"] for r in rows]
    predicted = [UNPARSED if r["predicted"] is None else r["predicted"] for r in rows]
    known = {"accuracy": lambda: accuracy(predicted, gold),
             "macro_f1": lambda: macro_f1(predicted, gold, labels=sorted(set(gold)))}
    if unknown := [name for name in names if name not in known]:
        raise UserError(f"unknown metric '{unknown[0]}' in task.metrics; use "
                        f"{', '.join(Classification.metric_names)}")
    results = {name: known[name]() for name in names}
    results["unparsed_rate"] = sum(r["predicted"] is None for r in rows) / len(rows)
    for ranking in ("sum", "char", "contextual", "pmi"):  # a local model's rankings
        if f"predicted_{ranking}" in rows[0]:
            results[f"accuracy_{ranking}"] = sum(r[f"predicted_{ranking}"] == r["label"]
                                                 for r in rows) / len(rows)
    if "confidence" in rows[0]:
        results["ece"] = consistency.expected_calibration_error(
            [r["confidence"] for r in rows], [r["predicted"] == r["label"] for r in rows])
    return results | answer_likelihood(rows, "gold")


def _normalised(text: str) -> str:
    """Case-blind, `_`/`-` as spaces, no surrounding quotes or punctuation."""
    text = re.sub(r"\s+", " ", text.casefold().replace("_", " ").replace("-", " "))
    return text.strip(" \t\n\"'`.,;:!*")


def label_matcher(task):
    """reply -> label index or None: exact (verbalization or label name), then `_normalised`."""
    exact, loose = {}, {}
    for index, (name, verbal) in enumerate(task.labels.items()):
        for form in (verbal.strip(), name):
            exact.setdefault(form, index)
            loose.setdefault(_normalised(form), index)

    def match(reply: str) -> int | None:
        reply = reply.strip()
        return exact[reply] if reply in exact else loose.get(_normalised(reply))

    return match
