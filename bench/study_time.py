"""Where a study's wall time went: each run's time beside its model arithmetic.

    python bench/study_time.py [pipelines/real_model/results] [--flops-per-s 1.75e11]

Reads the committed per-run results (one metrics.json a run, as `pvf` writes them under a
study's results/). A run's stage time runs from its start (MLflow's start_time) to the next
run's start: the job's work plus DVC's and the next process's start-up. Gaps over 20 minutes
(a study stopped and resumed) are dropped, and so is the last run (nothing follows it); its
own time ends at its metrics file's modification time. The arithmetic: the job's FLOPs as it
logged them (`cost/flops`: training and scoring) over the matrix-multiply rate torch reaches
on this machine at SmolLM2's shapes (bench/fit_split.py measures it; 1.7-1.8e11 on 2 cores).
"""

import argparse
import json
import statistics
from collections import defaultdict
from itertools import pairwise
from pathlib import Path

GAP_S = 20 * 60


def runs(root: Path) -> list[dict]:
    found = []
    for path in root.rglob("metrics.json"):
        data = json.loads(path.read_text())
        params = data["run"]["data"]["params"]
        found.append({
            "start": data["run"]["info"]["start_time"] / 1000, "end": path.stat().st_mtime,
            "group": "/".join((params["task.name"], params["arm.name"],
                               "final" if "/final/" in str(path) else "tuning")),
            "flops": data.get("cost/flops") or 0.0, "train_s": data.get("cost/train_seconds", 0),
            "eval_s": data.get("cost/eval_seconds", 0)})
    return sorted(found, key=lambda r: r["start"])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("results", nargs="?", default="pipelines/real_model/results")
    parser.add_argument("--flops-per-s", type=float, default=1.75e11)
    args = parser.parse_args()
    found = runs(Path(args.results))
    for run, after in pairwise(found):
        step = after["start"] - run["start"]
        run["stage"] = step if step < GAP_S else None
    groups = defaultdict(list)
    for run in found:
        groups[run["group"]].append(run)
    print(f"{len(found)} runs; arithmetic at {args.flops_per_s:.3g} FLOP/s\n")
    print("| runs of | n | stage min | job min | train min | scoring min | arithmetic min "
          "| stage / arithmetic | job s per run (median) |")
    print("|---|---|---|---|---|---|---|---|---|")
    totals = defaultdict(float)
    for name, group in sorted(groups.items()):
        timed = [r for r in group if r.get("stage")]
        stage = sum(r["stage"] for r in timed)
        job = sum(r["end"] - r["start"] for r in timed)
        train, score = sum(r["train_s"] for r in timed), sum(r["eval_s"] for r in timed)
        arith = sum(r["flops"] for r in timed) / args.flops_per_s
        for key, value in (("n", len(timed)), ("stage", stage), ("job", job), ("train", train),
                           ("score", score), ("arith", arith)):
            totals[key] += value
        median = statistics.median(r["end"] - r["start"] for r in timed) if timed else 0
        print(f"| {name} | {len(timed)} | {stage / 60:.1f} | {job / 60:.1f} | {train / 60:.1f} "
              f"| {score / 60:.1f} | {arith / 60:.1f} | {stage / max(arith, 1e-9):.1f}x "
              f"| {median:.0f} |")
    print(f"| all | {totals['n']:.0f} | {totals['stage'] / 60:.1f} | {totals['job'] / 60:.1f} "
          f"| {totals['train'] / 60:.1f} | {totals['score'] / 60:.1f} | "
          f"{totals['arith'] / 60:.1f} | {totals['stage'] / max(totals['arith'], 1e-9):.1f}x | |")


if __name__ == "__main__":
    main()
