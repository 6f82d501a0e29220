"""Intervals that include the test set's noise: a two-level bootstrap over a cell's
[seeds x test examples] quality matrix (examples resampled, shared by every seed; then the
seeds), and paired comparisons of two cells scored on the same test examples."""

import math

import numpy as np

N_BOOT = 2000  # bootstrap resamples
RNG_SEED = 0  # the report's own draws: the same store gives the same report


def _resampled_means(matrix: np.ndarray, examples: np.ndarray,
                     rng: np.random.Generator) -> np.ndarray:
    """Mean quality under each resample: the examples drawn (`examples`, [B x n], shared by
    every seed), then the seeds drawn with replacement."""
    seeds = len(matrix)
    per_seed = np.stack([matrix[s][examples].mean(axis=1) for s in range(seeds)])  # [S x B]
    if seeds == 1:
        return per_seed[0]
    drawn = rng.integers(0, seeds, (examples.shape[0], seeds))
    return per_seed[drawn, np.arange(examples.shape[0])[:, None]].mean(axis=1)


def bootstrap_interval(matrix: np.ndarray) -> tuple[float, float, float]:
    """(mean, 2.5th, 97.5th percentile) of a cell's quality over resampled test examples and
    seeds. A deterministic zero-shot cell still has an interval: its test set is a sample."""
    rng = np.random.default_rng(RNG_SEED)
    examples = rng.integers(0, matrix.shape[1], (N_BOOT, matrix.shape[1]))
    means = _resampled_means(matrix, examples, rng)
    low, high = np.percentile(means, [2.5, 97.5])
    return float(matrix.mean()), float(low), float(high)


def paired_difference(a: np.ndarray, b: np.ndarray) -> tuple[float, float, float]:
    """(mean of a - b, 2.5th, 97.5th percentile) for two cells scored on the same test
    examples: each resample draws the same examples for both (paired), seeds apart."""
    rng = np.random.default_rng(RNG_SEED)
    examples = rng.integers(0, a.shape[1], (N_BOOT, a.shape[1]))
    diffs = _resampled_means(a, examples, rng) - _resampled_means(b, examples, rng)
    low, high = np.percentile(diffs, [2.5, 97.5])
    return float(a.mean() - b.mean()), float(low), float(high)


def compare(a, b) -> dict:
    """Whether cell `a` beats cell `b`: paired on a shared test set (the difference's 95%
    interval excludes zero), else the two intervals do not overlap. With the difference and
    its interval (NaN when not paired)."""
    paired = (a["examples"] is not None and b["examples"] is not None
              and a["test_set"] == b["test_set"] and a["examples"].shape[1]
              == b["examples"].shape[1])
    if paired:
        diff, low, high = paired_difference(a["examples"], b["examples"])
        return {"beats": low > 0, "paired": True, "diff": diff, "low": low, "high": high}
    return {"beats": bool(a["quality_low"] > b["quality_high"]), "paired": False,
            "diff": a["quality"] - b["quality"], "low": math.nan, "high": math.nan}
