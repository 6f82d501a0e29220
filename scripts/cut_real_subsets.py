#!/usr/bin/env python3
"""Cut the two offline tasks shipped with the package from the full public datasets.

    python scripts/cut_real_subsets.py ../shared/data

reads Banking77 (`banking77/{train,test}.csv`, columns text,category) and DialogSum
(`dialogsum/{dev,test}.jsonl`) from that folder and writes, byte for byte the same each time,

- `intent_sample/{train,test}.jsonl`: 14 Banking77 intents of a support desk (card problems,
  charges and refunds, cancellations, account access), 20 train rows and 12 test rows each,
  drawn at random (seed 0) from Banking77's own train and test splits;
- `summary_sample/{train,test}.jsonl`: 64 DialogSum dev dialogues (train) and 200 test
  dialogues (with their three reference summaries), drawn at random (seed 0) from those of
  at most 120 words, so a CPU can fine-tune and decode them in minutes.

Rows are the upstream rows unchanged (Banking77's csv rows as JSON objects); a text that
appears twice (case and spacing aside) is kept once, and no test text is in train.
"""

import csv
import json
import random
import sys
from pathlib import Path

OUT = Path(__file__).parents[1] / "src/prompt_vs_finetune/resources/datasets"
INTENTS = ["card_arrival", "lost_or_stolen_card", "declined_card_payment", "change_pin",
           "card_payment_fee_charged", "transaction_charged_twice", "request_refund",
           "exchange_rate", "cancel_transfer", "terminate_account", "passcode_forgotten",
           "verify_my_identity", "edit_personal_details", "top_up_failed"]
PER_INTENT = {"train": 20, "test": 12}
DIALOGUES = {"train": ("dev", 64), "test": ("test", 200)}
MAX_WORDS = 120


def normal(text: str) -> str:
    return " ".join(text.casefold().split())


def distinct(rows: list[dict], field: str, seen: set[str]) -> list[dict]:
    """Rows whose text is new (adds them to `seen`), in their order."""
    kept = []
    for row in rows:
        key = normal(row[field])
        if key not in seen:
            seen.add(key)
            kept.append(row)
    return kept


def write(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))


def banking77(source: Path) -> None:
    seen: set[str] = set()
    for split in ("test", "train"):  # test first: a train text equal to a test one is dropped
        with (source / f"banking77/{split}.csv").open(newline="") as f:
            rows = distinct(list(csv.DictReader(f)), "text", seen)
        rng = random.Random(0)
        chosen = []
        for intent in INTENTS:
            pool = [r for r in rows if r["category"] == intent]
            chosen += rng.sample(pool, PER_INTENT[split])
        rng.shuffle(chosen)
        write(OUT / f"intent_sample/{split}.jsonl", chosen)


def dialogsum(source: Path) -> None:
    seen: set[str] = set()
    for split in ("test", "train"):
        name, n = DIALOGUES[split]
        with (source / f"dialogsum/{name}.jsonl").open() as f:
            rows = [json.loads(line) for line in f if line.strip()]
        rows = distinct([r for r in rows if len(r["dialogue"].split()) <= MAX_WORDS],
                        "dialogue", seen)
        write(OUT / f"summary_sample/{split}.jsonl", random.Random(0).sample(rows, n))


if __name__ == "__main__":
    data = Path(sys.argv[1] if len(sys.argv) > 1 else "../shared/data")
    banking77(data)
    dialogsum(data)
