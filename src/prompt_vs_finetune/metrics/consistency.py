"""Consistency and degeneration of a run's outputs, which ROUGE and accuracy do not show
(docs/tracking.md defines each key): distinct-n (Li et al. 2016), repeated n-grams, runs into
max_new_tokens, the spread of lengths; for classification the ECE (Guo et al. 2017)."""

import math
from collections import Counter

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
    if not grams:
        return 0.0
    return sum(count - 1 for count in Counter(grams).values()) / len(grams)


def generation(rows: list[dict]) -> dict[str, float]:
    """Over rows with `generated` (text) and `hit_limit` (decoding stopped at
    max_new_tokens); words are whitespace-separated, lower-cased."""
    outputs = [r["generated"].lower().split() for r in rows]
    lengths = [len(words) for words in outputs]
    mean = sum(lengths) / len(lengths)
    return {
        "distinct_1": distinct(outputs, 1),
        "distinct_2": distinct(outputs, 2),
        "repeated_ngram_rate": sum(map(repeated_ngram_rate, outputs)) / len(outputs),
        "hit_max_new_tokens": sum(bool(r["hit_limit"]) for r in rows) / len(rows),
        "length_words_mean": mean,
        "length_words_std": math.sqrt(sum((x - mean) ** 2 for x in lengths) / len(lengths)),
    }


def expected_calibration_error(confidence: list[float], correct: list[bool],
                               bins: int = ECE_BINS) -> float:
    """sum over bins of (share of examples in the bin) x |accuracy - mean confidence| in it;
    bin b holds confidences in (b/bins, (b+1)/bins], the first one 0 too."""
    totals = [[0, 0.0, 0] for _ in range(bins)]  # examples, confidence sum, correct
    for conf, right in zip(confidence, correct, strict=True):
        b = min(bins - 1, max(0, math.ceil(conf * bins) - 1))
        totals[b][0] += 1
        totals[b][1] += conf
        totals[b][2] += bool(right)
    n = len(confidence)
    return sum(abs(hits / count - conf_sum / count) * count / n
               for count, conf_sum, hits in totals if count)
