"""What a job cost (docs/cost.md), arithmetic only (no torch): every backend reports a `Usage`,
which `cost_metrics` turns into the same `cost/*` keys for all."""

from dataclasses import dataclass, field


@dataclass
class Usage:
    """What producing a run's test predictions (and its training, if the arm trains) took."""

    n_predictions: int
    eval_seconds: float  # wall time to produce every test prediction
    eval_usd: float  # what the predictions cost, each charged its own tokens (see call_usd)
    input_tokens: int  # tokens read to produce them (prompts with demos, labels when ranked)
    charged_tokens: int  # tokens the predictions are charged for (every call its own prompt)
    eval_usd_measured: float | None = None  # wall time x price (None: eval_usd)
    eval_usd_cached: float | None = None  # the demos paid once: a prefix cache (None: eval_usd)
    generated_tokens: int = 0
    eval_only_tokens: int = 0  # evaluation-only work (reference perplexity): no deployment pays
    train_seconds: float = 0.0
    train_usd: float = 0.0  # modelled from FLOPs (`fit_usd`), like the predictions
    train_usd_measured: float | None = None  # wall time x price (None: train_usd)
    train_tokens: int = 0
    trainable_params: int = 0
    local: dict[str, float] = field(default_factory=dict)  # flops, memory, params, devices

    def __post_init__(self):
        for name, same in (("eval_usd_cached", self.eval_usd),
                           ("eval_usd_measured", self.eval_usd),
                           ("train_usd_measured", self.train_usd)):
            if getattr(self, name) is None:
                setattr(self, name, same)


def cost_metrics(usage: Usage, upfront_usd: float = 0.0, labels_usd: float = 0.0) -> dict:
    """The `cost/*` keys of a run: its usage, what else it paid up front, its labels' price."""
    n = max(usage.n_predictions, 1)
    as_logged = ("train_seconds", "eval_seconds", "train_tokens", "generated_tokens",
                 "eval_only_tokens", "trainable_params", "train_usd", "train_usd_measured")
    return {**{f"cost/{name}": getattr(usage, name) for name in as_logged},
            "cost/eval_tokens": usage.input_tokens,
            "cost/usd": usage.train_usd + usage.eval_usd + upfront_usd + labels_usd,
            "cost/labels_usd": labels_usd,
            "cost/usd_per_1k_predictions": usage.eval_usd / n * 1000,
            "cost/usd_per_1k_predictions_cached": usage.eval_usd_cached / n * 1000,
            "cost/usd_per_1k_predictions_measured": usage.eval_usd_measured / n * 1000,
            "cost/tokens_per_prediction": usage.charged_tokens / n,
            "cost/latency_ms_per_example": usage.eval_seconds / n * 1000,
            **{f"cost/{name}": value for name, value in usage.local.items()}}


def call_usd(row: dict, total_params: int, cost_cfg, n_calls: int,
             cached: bool = False) -> tuple[float, float]:
    """(tokens charged, USD) of one local prediction: its prompt (`cached`: the demos spread over
    the run's calls), the labels it ranks or the tokens it writes, at 2N FLOPs a token."""
    prompt = row["call_tokens"] - cached * row["prefix_tokens"] * (1 - 1 / n_calls)
    generated = row.get("generated_tokens", 0)
    seconds = 2 * total_params * (prompt / cost_cfg.prompt_flops_per_second
                                  + generated / cost_cfg.generated_flops_per_second)
    return prompt + generated, seconds * cost_cfg.usd_per_hour / 3600


def fit_usd(train_flops: float, val_tokens: int, total_params: int, cost_cfg) -> float:
    """What fitting costs, modelled like a prediction (docs/cost.md: why not timed):
    `train_flops` at the training FLOP/s, plus the validation passes (2N a token)."""
    seconds = (train_flops / cost_cfg.train_flops_per_second
               + 2 * total_params * val_tokens / cost_cfg.prompt_flops_per_second)
    return seconds * cost_cfg.usd_per_hour / 3600
