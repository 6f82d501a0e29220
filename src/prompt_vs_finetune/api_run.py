"""A prompting arm on a hosted chat model, recorded as one MLflow run like any other job.

Same task, split, template and demonstrations as the local arms: the user message is the very
prompt a local model scores. A chat API gives no log-likelihoods, so classification asks for
one label and maps the reply onto the label set (exact, then normalised match; a reply that
matches none counts as wrong and in `test/unparsed_rate`), summarization takes the reply as
the summary, and perplexity is absent (not zero). Cost is the API's own usage (input and
output tokens) times the per-token prices in conf/cost/token_prices.
"""

import logging
import re
import time
from pathlib import Path

import mlflow
import pandas as pd
from omegaconf import DictConfig

from . import metrics
from .api_models import Reply, chat_model, token_prices
from .artifacts import log_classification_table, log_generation_artifacts
from .errors import UserError
from .prompts import select_demos
from .task import Task

log = logging.getLogger(__name__)

UNPARSED = "<unparsed>"
CLASSIFY = ("Classify the text. Reply with exactly one of these labels and nothing else:\n{}")
COMPLETE = "Reply with only what comes after the last line of the text, and nothing else."


def instruction(task: Task) -> str:
    """The system message: the label set for classification (a chat model cannot be ranked
    over it), a plain continuation for generation (the template already asks for a summary)."""
    if task.type == "classification":
        return CLASSIFY.format("\n".join(f"- {v.strip()}" for v in task.labels.values()))
    return COMPLETE


def _normalised(text: str) -> str:
    text = text.casefold().replace("_", " ").replace("-", " ")
    text = re.sub(r"\s+", " ", text)
    return text.strip(" \t\n\"'`.,;:!*")


def label_matcher(task: Task):
    """reply -> label index or None: exact (verbalization or label name), then normalised
    (case, `_`/`-` as spaces, surrounding quotes and punctuation)."""
    exact, loose = {}, {}
    for index, (name, verbal) in enumerate(task.labels.items()):
        for form in (verbal.strip(), name):
            exact.setdefault(form, index)
            loose.setdefault(_normalised(form), index)

    def match(reply: str) -> int | None:
        reply = reply.strip()
        return exact[reply] if reply in exact else loose.get(_normalised(reply))

    return match


def run_api(cfg: DictConfig, task: Task) -> dict[str, float]:
    from .run import content_hash, job_splits, write_results_file
    from .tracking import mlflow_run

    splits, dropped_rows, _ = job_splits(cfg, task)
    api = cfg.model.api
    price_in, price_out = token_prices(cfg.cost, api.model)
    cache_dir = Path(cfg.paths.cache_dir) / "api" if api.get("cache", True) else None
    client = chat_model(api, cache_dir)  # a missing key fails here, before any run exists
    demos = select_demos(splits["train"], cfg.arm.k, cfg.arm.selection, cfg.seed,
                         cfg.arm.get("order_seed"))
    prefix = "".join(task.demonstration(d) + task.demo_separator for d in demos)
    generation = task.type == "generation"
    max_tokens = cfg.decoding.max_new_tokens if generation else api.label_max_tokens
    system = instruction(task)
    requests = [client.request(system, prefix + task.prompt(text), max_tokens)
                for text in splits["test"]["text"]]

    with mlflow_run(cfg) as active:
        mlflow.log_params({f"data.{name}_sha256": content_hash(splits[name])
                           for name in ("train", "validation", "test")}
                          | {"fewshot.demos_sha256": content_hash(demos)})
        mlflow.set_tags({"perplexity": "n/a: an API model gives no log-likelihoods",
                         "api_model": api.model})
        started = time.perf_counter()
        replies = client.complete_all(requests)
        seconds = time.perf_counter() - started
        title = f"{task.name} / {cfg.arm.name} / {cfg.model.name} (N={len(requests)})"
        if generation:
            results = _generation_results(splits["test"], replies, title)
        else:
            results = _classification_results(task, splits["test"], replies, title)
        results.update(_cost(replies, seconds, price_in, price_out))
        results.update({
            "data/n_train": len(splits["train"]), "data/n_validation": len(splits["validation"]),
            "data/n_test": len(splits["test"]), "data/truncated_inputs": 0,
            "fewshot/demos_used": len(demos), "fewshot/demos_dropped": 0,
            "data/dropped_empty_rows": dropped_rows,
        })
        mlflow.log_metrics(results)
        write_results_file(cfg, active.info.run_id, results)
        log.info("run %s: %s", active.info.run_id,
                 ", ".join(f"{k}={v:.4g}" for k, v in results.items() if k.startswith("test/")))
        return results


def _classification_results(task: Task, split, replies: list[Reply],
                            title: str) -> dict[str, float]:
    match = label_matcher(task)
    names = task.label_names
    gold = [names.index(label) for label in split["label"]]
    found = [match(r.text) for r in replies]
    predicted = [len(names) if f is None else f for f in found]  # unparsed: its own column
    values = metrics.classification_metrics(task.metrics, predicted, gold,
                                            labels=sorted(set(gold)))
    results = {f"test/{k}": v for k, v in values.items()}
    results["test/unparsed_rate"] = sum(f is None for f in found) / len(found)
    table = pd.DataFrame({"text": split["text"], "gold": [names[g] for g in gold],
                          "predicted": [(names + [UNPARSED])[p] for p in predicted],
                          "reply": [r.text for r in replies]})
    log_classification_table(table, names + ([UNPARSED] if None in found else []), title)
    return results


def _generation_results(split, replies: list[Reply], title: str) -> dict[str, float]:
    texts = [r.text.strip() for r in replies]
    values = metrics.rouge(texts, split["references"])
    values["gen_length_mean"] = sum(r.output_tokens for r in replies) / len(replies)
    rows = [{"index": i, "references": refs, "generated": text,
             "generated_tokens": reply.output_tokens}
            for i, (refs, text, reply) in enumerate(zip(split["references"], texts, replies,
                                                        strict=True))]
    log_generation_artifacts(split["text"], rows, title)
    return {f"test/{k}": v for k, v in values.items()}


def _cost(replies: list[Reply], seconds: float, price_in: float,
          price_out: float) -> dict[str, float]:
    """Usage-priced cost of every prediction (cached ones too: what the evaluation costs),
    and what this run actually paid (`cost/usd_billed`, cache hits excluded)."""
    if not replies:
        raise UserError("the test split is empty; nothing to send to the API")
    usd = [r.input_tokens * price_in + r.output_tokens * price_out for r in replies]
    n = len(replies)
    return {
        "cost/usd": sum(usd),
        "cost/usd_billed": sum(u for u, r in zip(usd, replies, strict=True) if not r.cached),
        "cost/usd_per_1k_predictions": sum(usd) / n * 1000,
        "cost/train_usd": 0.0, "cost/train_seconds": 0.0, "cost/train_tokens": 0,
        "cost/trainable_params": 0,
        "cost/eval_seconds": seconds,
        "cost/eval_tokens": sum(r.input_tokens for r in replies),
        "cost/generated_tokens": sum(r.output_tokens for r in replies),
        "cost/latency_ms_per_example": 1000 * sum(r.latency_s for r in replies) / n,
        "api/cache_hits": sum(r.cached for r in replies),
        "api/retries": sum(r.retries for r in replies),
    }
