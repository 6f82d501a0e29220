"""A hosted chat model as a prompting arm: the user message is the very prompt a local model
scores; the task type reads the replies (docs/models.md: parsing, perplexity, cost)."""

import time
from pathlib import Path

from ..errors import UserError
from ..metrics.cost import Usage
from ..models.chat import api_key, chat_model, token_prices
from ..tasks import Task
from . import Backend, Predictions


class HostedBackend(Backend):
    kind = "hosted"

    @staticmethod
    def check(cfg) -> None:
        if cfg.arm.fit:
            raise UserError(f"arm={cfg.arm.name} trains weights, and model={cfg.model.name} is "
                            "a hosted API model without any; use arm=zero_shot or "
                            "arm=few_shot, or a local model (model=gpt2)")
        if cfg.inference_dtype != "float32":
            raise UserError(f"inference_dtype={cfg.inference_dtype} applies to local weights; "
                            f"model={cfg.model.name} runs at its provider's precision: drop it")
        api_key(cfg.model.api)
        token_prices(cfg.cost, cfg.model.api.model)

    def load(self, task, splits, corpus, demos, data_sha):
        cfg, api = self.cfg, self.cfg.model.api
        self.task, self.test, self.demos = task, splits["test"], demos
        self.prices = token_prices(cfg.cost, api.model)
        self.client = chat_model(api, Path(cfg.paths.cache_dir) / "api" if api.cache else None)
        self.max_tokens = int(  # a decoded answer's, or a label's
            cfg.decoding.max_new_tokens if task.kind.decodes else api.label_max_tokens)
        system = task.kind.instruction(task)
        self.requests = [self.client.request(system, turns(task, demos, text, cfg.prompt.chat),
                                             self.max_tokens) for text in self.test["text"]]
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
        rows = self.task.kind.read_replies(self.task, self.test, replies, self.max_tokens)
        return Predictions(rows=rows, usage=usage, demos_used=len(self.demos), metrics=metrics,
                           tags={"perplexity": "n/a: an API model gives no log-likelihoods",
                                 "api_model": self.cfg.model.api.model})


def turns(task: Task, demos: list[dict], text: str, chat: bool) -> list[dict]:
    """One user message holding the prompt a local model reads; with prompt.chat=true each
    demonstration its own user turn and assistant reply, as a local chat template has them."""
    if not chat:
        return [{"role": "user", "content": task.demo_prefix(demos) + task.prompt(text)}]
    shown = [[{"role": "user", "content": task.prompt(d["text"])},
              {"role": "assistant", "content": task.target(task.answer(d)).strip()}]
             for d in demos]
    return [*(m for pair in shown for m in pair), {"role": "user", "content": task.prompt(text)}]
