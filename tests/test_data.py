"""Length-grouped training batches: every example once per epoch, far less padding."""

import random

from prompt_vs_finetune.train.datamodule import LengthGroupedBatches


def padding(batches, lengths):
    return sum(max(lengths[i] for i in b) * len(b) - sum(lengths[i] for i in b) for b in batches)


def test_length_grouped_batches_cover_every_example_with_little_padding():
    rng = random.Random(0)
    lengths = [rng.randint(5, 200) for _ in range(1000)]
    sampler = LengthGroupedBatches(lengths, batch_size=16, seed=3, window=10)
    first = list(sampler)
    assert len(first) == len(sampler) == 63
    assert sorted(i for b in first for i in b) == list(range(1000))
    shuffled = list(range(1000))
    rng.shuffle(shuffled)
    plain = [shuffled[i:i + 16] for i in range(0, 1000, 16)]
    assert padding(first, lengths) < 0.15 * padding(plain, lengths)  # measured: 0.12
    assert list(sampler) == first  # same epoch, same batches (resumable)
    sampler.set_epoch(1)
    second = list(sampler)
    assert second != first and sorted(i for b in second for i in b) == list(range(1000))
