"""A zero-shot job as a user waits for it: `pvf` against lm-evaluation-harness's `lm_eval`, each
a whole process (start to exit), on the same test messages, model and prompts.

    python bench/whole_job.py [--n 20] [--rounds 2] [--batch-size 16]

Banking77 (77 intents), SmolLM2-135M-Instruct, CPU. The n test messages `test_size=n` picks are
written to a CSV of their own, which both sides read. pvf: a new process (`PVF_WARM=0`, no warm
worker), predictions not served from its cache, an MLflow store of its own, its defaults (it
also logs the calibrated rankings, ECE and perplexity). The harness: a multiple-choice task whose
contexts and choices are pvf's prompts and label verbalizations, decoded, scored by its `hf`
model on the checkpoint pvf dequantized (float32) with pvf's tokenizer. Sides interleaved, a
round each at a time; printed: each process's wall time, pvf's scoring (`cost/eval_seconds`) and
the rest, and the ratio. Needs `pip install -e ".[bench]"`.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import SHARED, banking77, machine, real_model, table

from prompt_vs_finetune.tasks import prompt_layout

HARNESS_TASK = """task: banking77_pvf
dataset_path: json
dataset_kwargs:
  data_files:
    test: {rows}
test_split: test
output_type: multiple_choice
doc_to_text: context
doc_to_choice: choices
doc_to_target: gold
target_delimiter: ""
metric_list:
  - metric: acc
"""


def prepare(folder: Path, n: int) -> tuple[list[str], list[str]]:
    """The two commands, on the same n messages: (pvf's, the harness's)."""
    _, task, splits = banking77()
    test = splits["test"].shuffle(seed=0).select(range(n))  # what test_size=n scores
    test.rename_column("label", "category").to_csv(folder / "test.csv", index=False)
    _, tokenizer, checkpoint = real_model("smollm2")
    encoder, _ = prompt_layout(task, tokenizer, 1024, None, [], test["text"])
    choices = [tokenizer.decode(ids) for ids in encoder.choice_ids]
    with open(folder / "rows.jsonl", "w") as rows:
        for text, label in zip(test["text"], test["label"], strict=True):
            rows.write(json.dumps({"context": tokenizer.decode(encoder.prompt_ids(text)),
                                   "choices": choices,
                                   "gold": task.label_names.index(label)}) + "\n")
    tokenizer.save_pretrained(folder / "tokenizer")
    (folder / "tasks").mkdir()
    (folder / "tasks" / "banking77_pvf.yaml").write_text(
        HARNESS_TASK.format(rows=folder / "rows.jsonl"))
    pvf = [str(Path(sys.executable).parent / "pvf"), "task=banking77",
           "task.label_field=category",
           f"task.data_files={{train: {SHARED / 'banking77' / 'train.csv'}, "
           f"test: {folder / 'test.csv'}}}",
           "model=smollm2", "arm=zero_shot", "cache_predictions=false",
           f"results_file={folder / 'pvf.json'}", f"hydra.run.dir={folder / 'pvf'}",
           f"mlflow.tracking_uri=sqlite:///{folder / 'mlflow.db'}"]
    harness = [str(Path(sys.executable).parent / "lm_eval"), "--model", "hf", "--model_args",
               f"pretrained={checkpoint},tokenizer={folder / 'tokenizer'},dtype=float32",
               "--tasks", "banking77_pvf", "--include_path", str(folder / "tasks"),
               "--device", "cpu"]
    return pvf, harness


def timed(command: list[str], env: dict) -> float:
    start = time.perf_counter()
    done = subprocess.run(command, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if done.returncode:
        raise SystemExit(f"{command[0]} failed:\n{done.stderr[-3000:]}")
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=20, help="test messages")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=16, help="the harness's batch size")
    args = parser.parse_args()
    env = {**os.environ, "PVF_WARM": "0", "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    rows = []
    with tempfile.TemporaryDirectory(prefix="pvf-whole-") as tmp:
        pvf, harness = prepare(Path(tmp), args.n)
        harness += ["--batch_size", str(args.batch_size)]
        for round_ in range(1, args.rounds + 1):
            load = os.getloadavg()[0]
            ours = timed(pvf, env)
            scoring = json.loads(Path(tmp, "pvf.json").read_text())["cost/eval_seconds"]
            theirs = timed(harness, env)
            rows.append([round_, f"{load:.1f}-{os.getloadavg()[0]:.1f}", ours, scoring,
                         ours - scoring, theirs, f"{theirs / ours:.1f}x"])
    print(f"# whole zero-shot job: Banking77, {args.n} messages x 77 intents, SmolLM2-135M, "
          f"{machine()}; harness batch size {args.batch_size}")
    print(table(["round", "load average", "pvf whole s", "pvf scoring s", "pvf outside scoring s",
                 "lm_eval whole s", "lm_eval / pvf"], rows))


if __name__ == "__main__":
    main()
