"""The configuration a final stage carries to seeds 1-4: the `pvf` overrides of the one the
report chooses for a task, side and label budget from the study's results, on one line, for
the stage's `pvf $(...)`. Run from the repository root (the stages' wdir):

    python pipelines/real_model/choose.py <task> <side> <n> [<results folder>]

<side>: `prompting` or a fine-tuning arm (`full_finetune`, `lora`), the report's sides; <n>:
the label budget (`train_size`, the report's `n_labels`). The choice is the report's own
(`report.picks`: the cells `pvf-report --runs-from` builds, then `cells.chosen`), so the two
cannot disagree: the best validation score over the seeds every configuration ran (here the
tuning seed, 0). Configurations tied there are one choice to the report, which pools them
("the mean of N tied"); a stage runs one, so this carries forward the first in ORDER, cheapest
first. The overrides are the tuning run's own (its `overrides` tag) less `seed`, `results_file`
and `hydra.*`, which the stage sets: seeds 1-4 of the same cell as its seed 0."""

import re
import sys
from pathlib import Path

from prompt_vs_finetune import report

SET_BY_STAGE = re.compile(r"^[+~]*(seed|results_file|hydra\.[\w.]+)=")
SAFE = re.compile(r"^[\w.,:/@%+=-]+$")  # the shell splits $(...) on spaces and expands globs
CALIBRATIONS = ("none", "contextual", "pmi")


def order(params: dict[str, str]) -> tuple:
    """Ties: fewer demos first (zero-shot, then the smaller k), plain layout before chat, then
    calibration none, contextual, pmi; learning rate: the model's default, then lower, then
    higher."""
    k = int(params.get("arm.k", 0)) if params.get("arm.demos") == "True" else 0
    calibration = params.get("scorer.calibration", "none")
    lr = float(params["arm.lr"]) if params.get("arm.lr", "None") != "None" else 0.0
    default = params.get("model.lora_lr" if params.get("arm.name") == "lora"
                         else "model.finetune_lr", "None")
    default = float(default) if default != "None" else lr
    return (k, params.get("prompt.chat") == "True",
            CALIBRATIONS.index(calibration) if calibration in CALIBRATIONS else len(CALIBRATIONS),
            lr != default, lr)


def choose(task: str, side: str, n: int, folder: Path) -> list[str]:
    saved = report.saved_results(folder)
    if older := [r.get("run_id") for r in saved if "run" not in r]:
        raise SystemExit(f"{len(older)} results file(s) under {folder} have no run record (an "
                         "older pvf's, e.g. the previous study's): remove them before the rerun")
    runs = report.recorded_runs(saved)
    picks = report.picks(runs)
    mine = picks[(picks["task"] == task) & (picks["side"] == side) & (picks["n_labels"] == n)]
    if len(mine) != 1:
        raise SystemExit(f"{len(mine)} choices for {task} / {side} / {n} labels under {folder} "
                         "(one expected: are its tuning runs there?)")
    records = {r["run"]["info"]["run_id"]: r["run"]["data"] for r in saved}
    candidates = runs[runs["cell"].isin(mine.iloc[0]["from_cells"])]
    first = min(candidates.itertuples(), key=lambda run: (
        order(records[run.run_id]["params"]), int(run.seed), run.run_id))
    tags = records[first.run_id]["tags"]
    if "overrides" not in tags:
        raise SystemExit(f"run {first.run_id} has no overrides tag: it did not run as `pvf`")
    kept = [o for o in tags["overrides"].split() if not SET_BY_STAGE.match(o)]
    if unsafe := [o for o in kept if not SAFE.match(o)]:
        raise SystemExit(f"overrides the shell would alter in $(...): {unsafe}")
    return kept


if __name__ == "__main__":
    task, side, n, *rest = sys.argv[1:]
    print(" ".join(choose(task, side, int(n), Path(*rest or ["pipelines/real_model/results"]))))
