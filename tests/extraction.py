"""A task type of a user's own, outside the package: extraction scored by exact match.

The model writes the answer (it decodes, as generation does); an answer is right when it
equals one of the references once case and surrounding spaces and punctuation are set aside.
A task YAML names it as `type: tests.extraction.ExactMatch`.
"""

from prompt_vs_finetune.metrics import Key
from prompt_vs_finetune.tasks.generation import Generation


def normal(text: str) -> str:
    return " ".join(text.casefold().split()).strip(" .,;:!?\"'")


class ExactMatch(Generation):
    name = "extraction"
    metric_names = ("exact_match",)
    per_example = "exact_match"
    quality = "test/exact_match"
    keys = {"test/exact_match": Key("share of outputs equal to a reference (case, spaces and "
                                    "surrounding punctuation aside)")}

    def each(self, rows: list[dict]) -> list[float]:
        return [float(normal(r["generated"]) in {normal(x) for x in r["references"]})
                for r in rows]

    def score(self, task, rows: list[dict]) -> tuple[dict[str, float], list[float]]:
        each = self.each(rows)
        return {"test/exact_match": sum(each) / len(each),
                "test/gen_length_mean": sum(r["generated_tokens"] for r in rows) / len(rows)
                }, each

    def dashboard(self) -> tuple[str, ...]:
        return ("test/exact_match",)
