"""trainer=ddp: two CPU processes (gloo) make one MLflow run, close to the single process."""

import json
import os
from pathlib import Path

from .test_cli import pvf, runs_in

COMMON = ("task=intent_sample", "model=tiny", "arm=full_finetune", "model.max_epochs=5",
          "callbacks.early_stopping.patience=100", "trainer.precision=32-true")


def test_ddp_on_two_cpu_processes_matches_one_process(tmp_path, monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # two processes on two cores
    single, ddp = tmp_path / "single", tmp_path / "ddp"
    single.mkdir(), ddp.mkdir()
    # the same global batch: 32 in one process, 16 in each of two
    one = pvf(single, *COMMON, "arm.batch_size=32", "results_file=r.json")
    assert one.returncode == 0, one.stderr[-3000:]
    two = pvf(ddp, *COMMON, "trainer=ddp", "trainer.accelerator=cpu", "trainer.devices=2",
              "arm.batch_size=16", "results_file=r.json")
    assert two.returncode == 0, two.stderr[-3000:]

    client, runs = runs_in(ddp)
    assert len(runs) == 1 and runs[0].info.status == "FINISHED"  # rank 1 logs no run
    metrics = runs[0].data.metrics
    expected = json.loads((single / "r.json").read_text())
    assert metrics["cost/devices"] == 2 and expected["cost/devices"] == 1
    predictions = client.download_artifacts(runs[0].info.run_id, "predictions.csv", str(ddp))
    assert len(Path(predictions).read_text().splitlines()) == 1 + 168  # both ranks' shares
    assert abs(metrics["test/accuracy"] - expected["test/accuracy"]) <= 0.1
    assert abs(metrics["val/best_loss"] - expected["val/best_loss"]) <= 0.2 * expected[
        "val/best_loss"]
    # every training token counted once across the two ranks (5 epochs of the same examples)
    assert abs(metrics["cost/train_tokens"] - expected["cost/train_tokens"]) <= 0.05 * expected[
        "cost/train_tokens"]
    assert not any(name.startswith(".pl_hydra") for name in os.listdir(ddp))
