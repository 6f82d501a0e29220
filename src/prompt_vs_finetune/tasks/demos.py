"""Few-shot demonstrations: which labelled examples a prompt shows, and in what order."""

import logging
import random
from collections import defaultdict

from datasets import Dataset

from ..errors import UserError

log = logging.getLogger(__name__)


def select_demos(pool: Dataset, k: int, selection: str, seed: int,
                 order_seed: int | None = None) -> list[dict]:
    """k demonstrations from the train pool: which ones is fixed by `seed`, their order by
    `order_seed` (so prompt-order sensitivity can be swept with the same demos)."""
    if k == 0:
        return []
    if k > len(pool):
        raise UserError(f"arm.k={k} but the train pool has {len(pool)} examples; lower arm.k")
    rng = random.Random(seed)
    if selection == "class_balanced" and "label" not in pool.column_names:
        log.info("arm.selection=class_balanced needs labels; a generation task draws at random")
        selection = "random"
    if selection == "random":
        chosen = rng.sample(range(len(pool)), k)
    elif selection == "class_balanced":
        chosen = _class_balanced(pool["label"], k, rng)
    else:
        raise UserError(f"unknown arm.selection '{selection}'; use random or class_balanced")
    random.Random(seed if order_seed is None else order_seed).shuffle(chosen)
    return [pool[i] for i in chosen]


def _class_balanced(labels: list[str], k: int, rng: random.Random) -> list[int]:
    """Round-robin over the labels (in a seeded order): label counts differ by at most one."""
    by_label: dict[str, list[int]] = defaultdict(list)
    for index, label in enumerate(labels):
        by_label[label].append(index)
    order = sorted(by_label)
    rng.shuffle(order)
    for label in order:
        rng.shuffle(by_label[label])
    chosen: list[int] = []
    depth = 0
    while len(chosen) < k:
        for label in order:
            if depth < len(by_label[label]) and len(chosen) < k:
                chosen.append(by_label[label][depth])
        depth += 1
    return chosen
