"""A hosted chat model as a prompting arm: the user message is the very prompt a local model
scores; on top of the SDKs, bounded concurrency, a reply cache, a deadline (docs/models.md)."""

import hashlib
import json
import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

from ..errors import UnreadableReply, UserError, first_line
from ..metrics.cost import Usage
from ..project import write_atomic
from ..tasks import Task
from ..tracking.secrets import redact
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
    """The local prompt as one user message, or (prompt.chat) a turn pair per demonstration."""
    if not chat:
        return [{"role": "user", "content": task.demo_prefix(demos) + task.prompt(text)}]
    shown = [[{"role": "user", "content": task.prompt(d["text"])},
              {"role": "assistant", "content": task.target(task.answer(d)).strip()}]
             for d in demos]
    return [*(m for pair in shown for m in pair), {"role": "user", "content": task.prompt(text)}]


@dataclass
class Reply:
    text: str
    input_tokens: int
    output_tokens: int
    latency_s: float  # of the call that produced it (cached replies keep theirs)
    retries: int = 0
    cached: bool = False


class ChatModel:
    """A provider's chat endpoint. Subclasses give `request` (the body that is sent and
    hashed; `turns` ends with the user's message) and `_call` (send it, read the reply)."""

    provider = ""
    sdk = ("", "")  # (module, client class)

    def __init__(self, api_cfg, cache_dir: Path | None):
        self.cfg, self.model = api_cfg, api_cfg.model
        self.cache_dir = cache_dir / self.provider if cache_dir else None
        key, (sdk_name, class_name) = api_key(api_cfg), self.sdk
        try:
            sdk = __import__(sdk_name)
        except ImportError as err:
            raise UserError(f"the `{sdk_name}` SDK is not installed; pip install "
                            "'prompt-vs-finetune[api]'") from err
        timeout = float(api_cfg.timeout_s)  # bounds each read and, by the transport, a reply
        self.client = getattr(sdk, class_name)(
            api_key=key, base_url=api_cfg.base_url or None,
            http_client=deadline_client(sdk, timeout), max_retries=int(api_cfg.max_retries),
            timeout=timeout)

    def _cache_path(self, request: dict) -> Path | None:
        """Same provider, endpoint and body -> same reply (temperature 0 by default)."""
        identity = {"provider": self.provider, "base_url": self.cfg.base_url, "request": request}
        key = hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()
        return self.cache_dir / key[:2] / f"{key}.json" if self.cache_dir else None

    def complete(self, request: dict) -> Reply:
        path = self._cache_path(request)
        if path is not None and path.is_file():
            try:
                return Reply(**{**json.loads(path.read_text()), "cached": True, "retries": 0})
            except (ValueError, TypeError):  # an unreadable entry is a miss, rewritten below
                pass
        started = time.perf_counter()
        try:
            reply = self._read(request)
        except Exception as err:  # noqa: BLE001 - turned into one actionable line
            if (wrapped := self._user_error(err)) is err:  # nothing to add (never from itself)
                raise
            raise wrapped from err
        reply.latency_s = time.perf_counter() - started
        if path is not None:  # written atomically: a killed job leaves no half entry
            write_atomic(path, json.dumps(asdict(reply)))
        return reply

    def complete_all(self, requests: list[dict]) -> list[Reply]:
        """Replies in request order; at most `max_concurrency` requests in flight."""
        with ThreadPoolExecutor(max_workers=max(1, int(self.cfg.max_concurrency))) as pool:
            return list(pool.map(self.complete, requests))

    def _read(self, request: dict) -> Reply:
        """`_call`, again on an unreadable reply (an error page, a cut body) as the SDK retries."""
        for _ in range(int(self.cfg.max_retries) + 1):
            try:
                return self._call(request)
            except UnreadableReply as err:
                unreadable = err
            except (ValueError, TypeError, AttributeError, KeyError, IndexError) as err:
                unreadable = UnreadableReply(f"{type(err).__name__}: {first_line(err, 80)}")
                unreadable.__cause__ = err
        raise unreadable

    def _user_error(self, err: Exception) -> Exception:
        """One line for the usual failures; a key in base_url's query string is redacted."""
        status, retries = getattr(err, "status_code", None), self.cfg.max_retries
        where = redact(self.cfg.base_url) if self.cfg.base_url else f"the {self.provider} API"
        if status in (401, 403):
            return UserError(f"{where} refused the key in {self.cfg.api_key_env} (HTTP "
                             f"{status}); check the key and its permissions")
        if status is not None:
            return UserError(f"{where} answered HTTP {status} for model '{self.model}' after "
                             f"{retries} retries: {first_line(err, 200)}; check "
                             "model.api.model and the request limits")
        if isinstance(err, UnreadableReply):
            return UserError(f"{where} sent a reply that is not a {self.provider} chat reply "
                             f"({err}); check model.api.base_url and model.api.model")
        if type(err).__name__ in ("APIConnectionError", "APITimeoutError"):
            return UserError(f"cannot reach {where} ({first_line(err, 200)}) after {retries} "
                             "retries; check the network or model.api.base_url")
        return err


class AnthropicChat(ChatModel):
    provider = "anthropic"
    sdk = ("anthropic", "Anthropic")

    def request(self, system: str, turns: list[dict], max_tokens: int) -> dict:
        # no temperature: the current Messages API takes no sampling parameters
        return {"model": self.model, "max_tokens": int(max_tokens), "system": system,
                "messages": turns}

    def _call(self, request: dict) -> Reply:
        raw = self.client.messages.with_raw_response.create(**request)
        message = raw.parse()
        content = getattr(message, "content", None)
        if not isinstance(content, list):
            raise UnreadableReply(f"no content list: {str(message)[:80]!r}")
        text = "".join(block.text for block in content if block.type == "text")
        return Reply(text, *_token_counts(message, "input_tokens", "output_tokens"), 0.0,
                     raw.retries_taken)


class OpenAICompatibleChat(ChatModel):
    """Any OpenAI-compatible chat-completions endpoint: OpenAI, vLLM, llama.cpp, a gateway."""

    provider = "openai_compatible"
    sdk = ("openai", "OpenAI")

    def request(self, system: str, turns: list[dict], max_tokens: int) -> dict:
        return {"model": self.model, "max_tokens": int(max_tokens),
                "temperature": float(self.cfg.temperature),
                "messages": [{"role": "system", "content": system}, *turns]}

    def _call(self, request: dict) -> Reply:
        raw = self.client.chat.completions.with_raw_response.create(**request)
        completion = raw.parse()
        choices = getattr(completion, "choices", None)
        if not choices:
            raise UnreadableReply(f"no choices: {str(completion)[:80]!r}")
        return Reply(choices[0].message.content or "",
                     *_token_counts(completion, "prompt_tokens", "completion_tokens"), 0.0,
                     raw.retries_taken)


def _token_counts(reply, input_key: str, output_key: str) -> tuple[int, int]:
    """(input, output) from its usage: a reply without them is refused, not counted as free."""
    usage = getattr(reply, "usage", None)
    counts = tuple(getattr(usage, key, None) for key in (input_key, output_key))
    if not all(isinstance(n, int) and n >= 0 for n in counts):
        raise UnreadableReply(f"its usage gives {input_key}={counts[0]!r}, "
                              f"{output_key}={counts[1]!r}, not token counts")
    return counts


def deadline_client(sdk, total_s: float):
    """The SDK's httpx client with a total deadline per reply: httpx bounds each read only, and a
    server trickling a byte a second kept a job waiting forever."""
    httpx = sys.modules[sdk.DefaultHttpxClient.__mro__[1].__module__.split(".")[0]]

    class DeadlineTransport(httpx.HTTPTransport):
        def handle_request(self, request):
            deadline = time.monotonic() + total_s
            response = super().handle_request(request)
            body = b""
            try:
                for chunk in response.stream:
                    if time.monotonic() > deadline:
                        raise httpx.ReadTimeout(f"the reply took over {total_s:g} s in all "
                                                "(model.api.timeout_s)", request=request)
                    body += chunk
            finally:
                response.stream.close()
            return httpx.Response(response.status_code, headers=response.headers, content=body,
                                  extensions=response.extensions)

    limits = httpx.Limits(max_connections=1000, max_keepalive_connections=100)  # the SDKs'
    return sdk.DefaultHttpxClient(transport=DeadlineTransport(limits=limits), timeout=total_s)


def api_key(api_cfg) -> str:
    """From the environment variable the config names, never from a config."""
    key = os.environ.get(api_cfg.api_key_env or "")
    if not key:
        raise UserError(f"the {api_cfg.provider} API needs a key in the environment variable "
                        f"{api_cfg.api_key_env} (model.api.api_key_env); export it and run "
                        "again")
    return key


PROVIDERS = {cls.provider: cls for cls in (AnthropicChat, OpenAICompatibleChat)}


def chat_model(api_cfg, cache_dir: Path | None) -> ChatModel:
    if api_cfg.provider not in PROVIDERS:
        raise UserError(f"unknown model.api.provider '{api_cfg.provider}'; use one of "
                        f"{', '.join(PROVIDERS)}")
    return PROVIDERS[api_cfg.provider](api_cfg, cache_dir)


def token_prices(cost_cfg, model: str) -> tuple[float, float]:
    """(USD per input token, USD per output token) from conf/cost/token_prices."""
    table = cost_cfg.get("token_prices") or {}
    if model not in table:
        raise UserError(f"no token prices for API model '{model}' in cost.token_prices (known: "
                        f"{', '.join(table) or 'none'}); add it to conf/cost/token_prices/ or "
                        f"pass +cost.token_prices.{model}.input=... and .output=... (USD per "
                        "million tokens)")
    entry = table[model]
    return float(entry.input) / 1e6, float(entry.output) / 1e6
