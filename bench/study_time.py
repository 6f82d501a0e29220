"""Where a study's wall time went: each run's time beside its model arithmetic.

    python bench/study_time.py [pipelines/real_model/results] [--flops-per-s 1.75e11]

Reads the committed per-run results (one metrics.json a run, as `pvf` writes them under a
study's results/). A run's stage time runs from its start (MLflow's start_time) to the next
run's start: the job's work plus DVC's and the next process's start-up. Gaps over 20 minutes
(a study stopped and resumed) are dropped, and so is the last run (nothing follows it). A
run's job time ends at its metrics file's modification time where that is the study's own (a
fresh checkout's files carry the checkout's: the job columns say n/a). The arithmetic: the
job's FLOPs as it logged them (`cost/flops`: training and scoring) over the matrix-multiply
rate torch reaches on this machine at SmolLM2's shapes (bench/fit_split.py measures it;
1.7-1.8e11 on 2 cores).
"""

import argparse
import json
import statistics
from collections import defaultdict
from itertools import pairwise
from pathlib import Path

GAP_S = 20 * 60


def runs(root: Path) -> list[dict]:
    """Each run's times and FLOPs (read here, not by `report.saved_results`, which keeps
    neither the file's path nor its modification time)."""
    found = []
    for path in root.rglob("metrics.json"):
        data = json.loads(path.read_text())
        params = data["run"]["data"]["params"]
        start, written = data["run"]["info"]["start_time"] / 1000, path.stat().st_mtime
        found.append({
            "start": start,
            # a fresh checkout's files carry the checkout's time: no job time then
            "job": written - start if 0 < written - start < GAP_S else None,
            "group": "/".join((params["task.name"], params["arm.name"],
                               "final" if "/final/" in str(path) else "tuning")),
            "flops": data.get("cost/flops") or 0.0, "train_s": data.get("cost/train_seconds", 0),
            "eval_s": data.get("cost/eval_seconds", 0)})
    return sorted(found, key=lambda r: r["start"])


def row(name: str, timed: list[dict], flops_per_s: float) -> str:
    """One table row: minutes summed over `timed`, the stage's ratio to its arithmetic."""
    stage, arith = sum(r["stage"] for r in timed), sum(r["flops"] for r in timed) / flops_per_s
    jobs = [r["job"] for r in timed if r["job"] is not None]
    job = f"{sum(jobs) / 60:.1f} | {statistics.median(jobs):.0f}" if jobs else "n/a | n/a"
    train, score = sum(r["train_s"] for r in timed), sum(r["eval_s"] for r in timed)
    return (f"| {name} | {len(timed)} | {stage / 60:.1f} | {train / 60:.1f} | {score / 60:.1f} "
            f"| {arith / 60:.1f} | {stage / max(arith, 1e-9):.1f}x | {job} |")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("results", nargs="?", default="pipelines/real_model/results")
    parser.add_argument("--flops-per-s", type=float, default=1.75e11)
    args = parser.parse_args()
    found = runs(Path(args.results))
    for run, after in pairwise(found):
        step = after["start"] - run["start"]
        run["stage"] = step if step < GAP_S else None
    timed = [r for r in found if r.get("stage") is not None]
    groups = defaultdict(list)
    for run in timed:
        groups[run["group"]].append(run)
    print(f"{len(found)} runs, {len(timed)} timed; arithmetic at {args.flops_per_s:.3g} FLOP/s\n")
    print("| runs of | n | stage min | train min | scoring min | arithmetic min "
          "| stage / arithmetic | job min | job s per run (median) |")
    print("|---|---|---|---|---|---|---|---|---|")
    for name, group in sorted(groups.items()):
        print(row(name, group, args.flops_per_s))
    print(row("all", timed, args.flops_per_s))


if __name__ == "__main__":
    main()
