"""A hosted chat model as a prompting arm: same task, split, template and demonstrations as
the local arms; the user message is the very prompt a local model scores.

A chat API gives no log-likelihoods, so classification asks for one label and maps the reply
onto the label set (exact, then normalised match; a reply that matches none counts as wrong
and in `test/unparsed_rate`), summarization takes the reply as the summary, and perplexity is
absent (not zero). Cost is the API's own usage (input and output tokens) times the per-token
prices in conf/cost/token_prices.
"""

import re
import time
from pathlib import Path

from ..errors import UserError
from ..models.chat import api_key, chat_model, token_prices
from ..tasks import Task
from ..usage import Usage
from . import Backend, Predictions

CLASSIFY = "Classify the text. Reply with exactly one of these labels and nothing else:\n{}"
COMPLETE = "Reply with only what comes after the last line of the text, and nothing else."


class HostedBackend(Backend):
    kind = "hosted"

    @staticmethod
    def check(cfg) -> None:
        """No data loaded, no run opened, if the arm trains or the key or a price is missing."""
        if cfg.arm.fit:
            raise UserError(f"arm={cfg.arm.name} trains weights, and model={cfg.model.name} is "
                            "a hosted API model without any; use arm=zero_shot or "
                            "arm=few_shot, or a local model (model=gpt2)")
        if cfg.inference_dtype != "float32":
            raise UserError(f"inference_dtype={cfg.inference_dtype} applies to local weights; "
                            f"model={cfg.model.name} runs at its provider's precision: drop it")
        api_key(cfg.model.api)
        token_prices(cfg.cost, cfg.model.api.model)

    def __init__(self, cfg, task, splits, corpus, demos, data_sha):
        api = cfg.model.api
        self.task, self.test, self.demos = task, splits["test"], demos
        self.prices = token_prices(cfg.cost, api.model)
        self.client = chat_model(api, Path(cfg.paths.cache_dir) / "api" if api.cache else None)
        generation = task.type == "generation"
        max_tokens = cfg.decoding.max_new_tokens if generation else api.label_max_tokens
        self.max_tokens = int(max_tokens)
        system = instruction(task)
        self.requests = [self.client.request(system, turns(task, demos, text, cfg.prompt.chat),
                                             max_tokens)
                         for text in self.test["text"]]
        self.model_name = api.model
        if not self.requests:
            raise UserError("the test split is empty; nothing to send to the API")

    def predict(self, run) -> Predictions:
        started = time.perf_counter()
        replies = self.client.complete_all(self.requests)
        seconds = time.perf_counter() - started
        price_in, price_out = self.prices
        usd = [r.input_tokens * price_in + r.output_tokens * price_out for r in replies]
        tokens_in = sum(r.input_tokens for r in replies)
        tokens_out = sum(r.output_tokens for r in replies)
        usage = Usage(n_predictions=len(replies), eval_seconds=seconds, eval_usd=sum(usd),
                      input_tokens=tokens_in, generated_tokens=tokens_out,
                      charged_tokens=tokens_in + tokens_out)
        metrics = {
            "api/cache_hits": sum(r.cached for r in replies),
            "api/retries": sum(r.retries for r in replies),
            "api/usd_billed": sum(u for u, r in zip(usd, replies, strict=True) if not r.cached),
            "api/request_latency_ms": 1000 * sum(r.latency_s for r in replies) / len(replies),
        }
        return Predictions(rows=self._rows(replies), usage=usage, demos_used=len(self.demos),
                           metrics=metrics,
                           tags={"perplexity": "n/a: an API model gives no log-likelihoods",
                                 "api_model": self.model_name})

    def _rows(self, replies) -> list[dict]:
        if self.task.type == "generation":
            return [{"index": i, "references": refs, "generated": reply.text.strip(),
                     "generated_tokens": reply.output_tokens,
                     "hit_limit": reply.output_tokens >= self.max_tokens}
                    for i, (refs, reply) in enumerate(zip(self.test["references"], replies,
                                                          strict=True))]
        match, names = label_matcher(self.task), self.task.label_names
        return [{"index": i, "label": names.index(gold), "predicted": match(reply.text),
                 "reply": reply.text}
                for i, (gold, reply) in enumerate(zip(self.test["label"], replies, strict=True))]


def turns(task: Task, demos: list[dict], text: str, chat: bool) -> list[dict]:
    """The conversation sent: one user message holding the prompt the local models read
    (demonstrations first); with prompt.chat=true, each demonstration its own user turn and
    assistant reply, as a local chat template lays them out."""
    if not chat:
        return [{"role": "user", "content": task.demo_prefix(demos) + task.prompt(text)}]
    shown = [[{"role": "user", "content": task.prompt(d["text"])},
              {"role": "assistant", "content": task.target(task.answer(d)).strip()}]
             for d in demos]
    return [*(m for pair in shown for m in pair), {"role": "user", "content": task.prompt(text)}]


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
