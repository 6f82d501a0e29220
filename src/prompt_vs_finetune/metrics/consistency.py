"""What ROUGE and accuracy do not show: generation's distinct-n (Li et al. 2016), repeats and
lengths; classification's ECE (Guo et al. 2017). docs/tracking.md defines each key."""

import statistics
from collections import Counter

import numpy as np

ECE_BINS = 15
REPEAT_N = 3  # loops show as repeated trigrams ("the customer said the customer said ...")


def ngrams(words: list[str], n: int) -> list[tuple[str, ...]]:
    return [tuple(words[i:i + n]) for i in range(len(words) - n + 1)]


def distinct(outputs: list[list[str]], n: int) -> float:
    """Distinct n-grams over all outputs / all n-grams (0 when no output has n words)."""
    grams = [g for words in outputs for g in ngrams(words, n)]
    return len(set(grams)) / len(grams) if grams else 0.0


def repeated_ngram_rate(words: list[str], n: int = REPEAT_N) -> float:
    """Share of an output's n-grams that already occurred earlier in it (0: no repeats)."""
    grams = ngrams(words, n)
    return sum(count - 1 for count in Counter(grams).values()) / len(grams) if grams else 0.0


def generation(rows: list[dict]) -> dict[str, float]:
    """Over rows with `generated` and `hit_limit` (stopped at max_new_tokens); lower-case words."""
    outputs = [r["generated"].lower().split() for r in rows]
    lengths = [len(words) for words in outputs]
    return {"distinct_1": distinct(outputs, 1), "distinct_2": distinct(outputs, 2),
            "repeated_ngram_rate": statistics.fmean(map(repeated_ngram_rate, outputs)),
            "hit_max_new_tokens": statistics.fmean(bool(r["hit_limit"]) for r in rows),
            "length_words_mean": statistics.fmean(lengths),
            "length_words_std": statistics.pstdev(lengths)}


def expected_calibration_error(confidence: list[float], correct: list[bool],
                               bins: int = ECE_BINS) -> float:
    """sum over bins of (share of examples in the bin) x |accuracy - mean confidence| in it;
    bin b holds confidences in (b/bins, (b+1)/bins], the first one 0 too."""
    conf, right = np.asarray(confidence, dtype=float), np.asarray(correct, dtype=float)
    bin_of = np.clip(np.ceil(conf * bins) - 1, 0, bins - 1)
    in_bins = [bin_of == b for b in range(bins)]
    return float(sum(abs(right[m].mean() - conf[m].mean()) * m.mean() for m in in_bins if m.any()))
