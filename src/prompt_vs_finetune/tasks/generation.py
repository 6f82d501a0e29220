"""Generation: the model writes the answer (summarization), scored by ROUGE against
references. A type that scores otherwise (exact match) subclasses it: tests/extraction.py."""

from ..errors import UserError
from ..metrics import LOCAL, ROUGE_TYPES, Key, consistency, rouge_each
from .task_types import TaskType, answer_likelihood, log_table, text_of

COMPLETE = "Reply with only what comes after the last line of the text, and nothing else."

KEYS = {
    **{f"test/{rouge}{way}": Key(f"ROUGE-{rouge[5:]} F-measure, stemmed, {how}") for way, how in (
        ("", "against each reference, averaged over them (DialogSum's protocol), then examples"),
        ("_best", "against each example's best reference (score_multi; above the protocol's)"))
       for rouge in ROUGE_TYPES},
    "val/rougeL": Key("ROUGE-L on the budget's validation part (the report chooses on it)", LOCAL,
                      fitted_only=True),
    "test/gen_length_mean": Key("mean generated tokens per test example (the model's tokenizer)"),
    "test/distinct_1": Key("distinct / all words of all outputs (low: generic; Li et al. 2016)"),
    "test/distinct_2": Key("distinct word bigrams / all bigrams over every output"),
    "test/repeated_ngram_rate": Key("mean share of an output's word trigrams it repeats (loops)"),
    "test/hit_max_new_tokens": Key("share of outputs cut off by max_new_tokens (never ended)"),
    "test/length_words_mean": Key("mean output length in words"),
    "test/length_words_std": Key("standard deviation of the output length in words"),
}


class Generation(TaskType):
    answer_column = "references"
    metric_names = ("rouge",)
    per_example = "rougeL"
    quality = "test/rougeL"
    decodes = True
    keys = KEYS

    def answer_feature(self):
        from datasets import List, Value
        return List(Value("string"))

    def row_maker(self, split, task_cfg, source: str):
        text_field, wanted = task_cfg.text_field, list(task_cfg.reference_fields)
        fields = [f for f in wanted if f in split.column_names]
        if not fields:
            raise UserError(f"none of the reference columns {wanted} "
                            f"(task.reference_fields) is in {source}; available columns: "
                            f"{', '.join(split.column_names)}")

        def to_row(row):
            references = []
            for f in fields:  # a column may hold one reference or a list of them
                values = row[f] if isinstance(row[f], list) else [row[f]]
                references += [text_of(v).strip() for v in values]
            return {"text": text_of(row[text_field]),
                    "references": [r for r in references if r]}

        return to_row

    def check_config(self, c) -> None:
        c.choice("decoding.strategy", ("greedy", "beam", "sampling"))
        c.integer("decoding.max_new_tokens", 1)
        c.integer("decoding.num_beams", 1)
        c.number("decoding.length_penalty")
        c.number("decoding.repetition_penalty", 0, low_open=True)
        c.integer("decoding.no_repeat_ngram_size", 0)
        c.integer("decoding.batch_size", 1)
        c.integer("decoding.max_batch_tokens", 1, null=True)
        c.integer("decoding.seed", 0, c.MAX_SEED, null=True)
        if c.value("decoding.strategy") == "sampling":
            c.number("decoding.temperature", 0, low_open=True)
            c.integer("decoding.top_k", 0)
            c.number("decoding.top_p", 0, 1, low_open=True)
        stop = c.value("decoding.stop")
        if stop and not all(isinstance(s, str) for s in stop):
            c.fail("decoding.stop", "is not a list of strings", "quote each stop string")

    def answer(self, task, row: dict) -> str:
        return row["references"][0]

    def score(self, task, rows: list[dict]) -> tuple[dict[str, float], list[float]]:
        """ROUGE (computed once), mean generated tokens, consistency, the references' perplexity."""
        scores = rouge_each([r["generated"] for r in rows], [r["references"] for r in rows])
        values = {name: sum(each) / len(each) if each else 0.0 for name, each in scores.items()}
        values["gen_length_mean"] = sum(r["generated_tokens"] for r in rows) / len(rows)
        values |= consistency.generation(rows) | answer_likelihood(rows, "ref")
        return {f"test/{name}": value for name, value in values.items()}, scores["rougeL"]

    def each(self, rows: list[dict]) -> list[float]:
        return rouge_each([r["generated"] for r in rows], [r["references"] for r in rows])[
            "rougeL"]

    def dashboard(self) -> tuple[str, ...]:
        return ("test/rougeL", "test/rouge1")

    def instruction(self, task) -> str:
        return COMPLETE  # a plain continuation: the template already asks for the answer

    def read_replies(self, task, test, replies, max_tokens: int) -> list[dict]:
        return [{"index": i, "references": refs, "generated": reply.text.strip(),
                 "generated_tokens": reply.output_tokens,
                 "hit_limit": reply.output_tokens >= max_tokens}
                for i, (refs, reply) in enumerate(zip(test["references"], replies, strict=True))]

    def hidden(self, task, text: str) -> dict:
        return {"text": text, "references": ["-"]}

    def taught(self, task, rows: list[dict]) -> tuple[list, list[float]]:
        """A summary counts when it is not empty and was not cut by max_new_tokens."""
        outputs = [r["generated"].strip() for r in rows]
        return outputs, [float(bool(r["generated"].strip()) and not r["hit_limit"]) for r in rows]

    def as_answer(self, output):
        return [output]

    def log_predictions(self, task, texts: list[str], rows: list[dict], title: str) -> None:
        """predictions.csv (input, references, generated) and samples.md, the first five."""
        import mlflow
        import pandas as pd
        log_table(pd.DataFrame({
            "input": [texts[r["index"]] for r in rows],
            "references": [" ||| ".join(r["references"]) for r in rows],
            "generated": [r["generated"] for r in rows],
            "generated_tokens": [r["generated_tokens"] for r in rows]}))
        lines = [f"# {title}", ""]
        for r in rows[:5]:
            lines += [f"## Example {r['index']}", "", "**Input**", "",
                      "> " + texts[r["index"]].replace("\n", "\n> "), "",
                      "**Reference**: " + r["references"][0], "",
                      "**Generated**: " + (r["generated"] or "*(empty)*"), ""]
        mlflow.log_text("\n".join(lines), "samples.md")


TASK_TYPE = Generation()
