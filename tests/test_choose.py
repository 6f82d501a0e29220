"""The real-model study's chooser (pipelines/real_model/choose.py) on hand-made results files:
it carries the report's own choice to the final stages, ties in its documented order."""

import importlib.util
import json
from pathlib import Path

import pytest

from prompt_vs_finetune import report

ROOT = Path(__file__).parents[1]
SPEC = importlib.util.spec_from_file_location("choose", ROOT / "pipelines/real_model/choose.py")
choose = importlib.util.module_from_spec(SPEC)
SPEC.loader.exec_module(choose)
FIT = {"zero_shot": False, "few_shot": False, "full_finetune": True, "lora": True}


def result(folder: Path, arm: str, n: int, val: float, seed: int = 0, k: int = 0,
           chat: bool = False, calibration: str = "none", lr: str | None = None) -> list[str]:
    """A results file as `pvf ... results_file=` writes it; returns the run's own overrides."""
    config = f"{arm}-n{n}-k{k}-chat{chat}-{calibration}-lr{lr}"
    overrides = ["task=t", "model=m", f"arm={arm}", f"train_size={n}",
                 *([f"arm.k={k}", "arm.selection=class_balanced"] if k else []),
                 f"prompt.chat={str(chat).lower()}", f"scorer.calibration={calibration}",
                 *([f"arm.lr={lr}"] if lr else []), f"seed={seed}", "study=s",
                 f"results_file={folder}/{config}/seed{seed}/metrics.json",
                 f"hydra.run.dir=outputs/{config}/seed{seed}"]
    run_id = f"{config}-seed{seed}"
    params = {"data.test_sha256": "T", "arm.name": arm, "arm.k": str(k),
              "arm.demos": str(k > 0), "prompt.chat": str(chat),
              "scorer.calibration": calibration, "arm.lr": lr or "None",
              "model.finetune_lr": "0.0001", "model.lora_lr": "0.003"}
    tags = {"arm": arm, "fit": str(FIT[arm]).lower(), "task": "t", "model": "m",
            "seed": str(seed), "cell": config, "overrides": " ".join(overrides)}
    metrics = {"test/accuracy": 0.5, "val/accuracy": val, "data/n_labels": n,
               "data/n_validation": 3, "cost/usd_per_1k_predictions": 1.0}
    path = folder / config / f"seed{seed}" / "metrics.json"
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps({"run_id": run_id, **metrics, "run": {
        "info": {"run_id": run_id, "experiment_id": "1", "start_time": seed,
                 "artifact_uri": ""},
        "data": {"params": params, "tags": tags, "metrics": metrics}},
        "per_example": {"values": [0.0, 1.0], "predictions": None}}))
    return [o for o in overrides if not o.startswith(("seed=", "results_file=", "hydra."))]


def test_the_chooser_carries_the_reports_choice_and_breaks_ties_cheapest_first(tmp_path):
    # 14 labels, prompting: few-shot contextual and uncalibrated tie on validation, zero-shot
    # loses; ties go in the documented order (calibration none first), not by name
    result(tmp_path, "zero_shot", 14, 0.0)
    result(tmp_path, "few_shot", 14, 1.0, k=4, calibration="contextual")
    uncalibrated = result(tmp_path, "few_shot", 14, 1.0, k=4)
    # 28 labels: k=14 best at seed 0; its carried seeds 1-4 validate worse than k=4's seed 0
    best = result(tmp_path, "few_shot", 28, 0.9, k=14, calibration="pmi")
    for seed in range(1, 5):
        result(tmp_path, "few_shot", 28, 0.1, seed=seed, k=14, calibration="pmi")
    result(tmp_path, "few_shot", 28, 0.8, k=4, calibration="pmi")
    # LoRA at 14: all three rates tie (the default goes on); at 28 the two others tie (lower)
    carried = {lr: result(tmp_path, "lora", 14, 1.0, lr=lr) for lr in ("1e-3", "3e-3", "1e-2")}
    lower = result(tmp_path, "lora", 28, 0.7, lr="1e-3")
    result(tmp_path, "lora", 28, 0.7, lr="1e-2")
    result(tmp_path, "lora", 28, 0.3, lr="3e-3")

    picks = report.picks(report.recorded_runs(report.saved_results(tmp_path))).set_index(
        ["side", "n_labels"])
    assert picks.loc[("prompting", 14), "chosen_by"] == \
        "chosen on validation from 3 configurations, the mean of 2 tied"  # pooled in the report
    assert choose.choose("t", "prompting", 14, tmp_path) == uncalibrated
    assert choose.choose("t", "prompting", 28, tmp_path) == best
    assert picks.loc[("prompting", 28), "runs"] == 5  # its seeds 1-4 are the same cell
    assert choose.choose("t", "lora", 14, tmp_path) == carried["3e-3"]
    assert choose.choose("t", "lora", 28, tmp_path) == lower
    assert "arm.lr=1e-3" in lower and "seed=0" not in " ".join(lower)
    with pytest.raises(SystemExit, match="0 choices for t / full_finetune / 14"):
        choose.choose("t", "full_finetune", 14, tmp_path)


def test_the_chooser_refuses_results_of_the_previous_study(tmp_path):
    result(tmp_path, "zero_shot", 14, 0.0)
    old = tmp_path / "old/seed0/metrics.json"
    old.parent.mkdir(parents=True)
    old.write_text(json.dumps({"run_id": "x", "test/accuracy": 0.5}))
    with pytest.raises(SystemExit, match="1 results file.*no run record"):
        choose.choose("t", "prompting", 14, tmp_path)


def test_each_final_stage_follows_exactly_its_sides_tuning_stages():
    """pipelines/real_model: every tuning stage runs seed 0; each final stage runs the choice at
    seeds 1-4 and depends on the results of its task x side x budget's tuning stages, all of
    them and no other (the zero-shot runs without labels choose nothing)."""
    from dvc.repo import Repo

    with Repo(str(ROOT)) as repo:
        stages = repo.stage.collect(str(ROOT / "pipelines/real_model/dvc.yaml"))
    tuning, finals = {}, []
    for stage in stages:
        if stage.cmd.startswith("pvf "):
            args = dict(a.split("=", 1) for a in stage.cmd.split() if "=" in a)
            assert args["seed"] == "0", stage.name
            arm = args["arm"]
            tuning[stage.name] = ((args["task"], arm if arm in FIT and FIT[arm] else "prompting",
                                   args.get("train_size")), [o.fs_path for o in stage.outs])
        elif "choose.py" in stage.cmd:
            finals.append(stage)
    assert finals and len(tuning) > len(finals)
    followed = set()
    for stage in finals:
        task, side, n = stage.cmd.split("choose.py ")[1].split(")")[0].split()
        assert "for s in 1 2 3 4;" in stage.cmd and "seed=$s" in stage.cmd, stage.name
        under = {name for name, (_, outs) in tuning.items() for dep in stage.deps
                 if any(Path(out).is_relative_to(dep.fs_path) for out in outs)}
        assert under == {name for name, (key, _) in tuning.items() if key == (task, side, n)}
        assert under, stage.name
        followed |= under
    assert {name for name, (key, _) in tuning.items() if key[2] is not None} == followed
