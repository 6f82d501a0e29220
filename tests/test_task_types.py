"""A third task type, defined outside src/ (tests/extraction.py: exact-match extraction), runs
through a job, MLflow and `pvf-report` with no change to the package: the task type is an
object the task YAML names, and nothing else in pvf asks which type a task is."""

import json
import subprocess
import sys

import pytest
from mlflow.tracking import MlflowClient

from prompt_vs_finetune.report import main
from prompt_vs_finetune.tasks import task_type
from prompt_vs_finetune.tasks.task_types import TaskType

from .extraction import ExactMatch
from .test_cli import job_env

TASK = """defaults:
  - _base
  - _self_
name: order_ids
type: tests.extraction.ExactMatch
data_files: {{train: {train}, test: {test}}}
text_field: message
reference_fields: [order_id]
splits: {{train: train, validation: null, test: test}}
templates:
  default: "{{text}}\\nOrder number:"
stop: ["\\n"]
max_new_tokens: 8
metrics: [exact_match]
"""
CODES = ["A17", "B42", "C03", "D88", "E51", "F29", "G64", "H10", "J75", "K36", "L92", "M47"]


def test_the_type_scores_exact_matches():
    rows = [{"generated": " b42.", "references": ["B42"], "generated_tokens": 2},
            {"generated": "C03", "references": ["C30", "c03 "], "generated_tokens": 1},
            {"generated": "A17 please", "references": ["A17"], "generated_tokens": 3}]
    metrics, each = task_type("tests.extraction.ExactMatch").score(None, rows)
    assert each == [1.0, 1.0, 0.0] and metrics["test/exact_match"] == pytest.approx(2 / 3)
    assert isinstance(task_type("tests.extraction.ExactMatch"), ExactMatch)


def test_a_type_of_the_users_own_runs_through_a_job_mlflow_and_the_report(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    for split, codes in (("train", CODES[:8]), ("test", CODES[8:])):
        with open(data / f"{split}.jsonl", "w") as f:
            for i, code in enumerate(codes):
                f.write(json.dumps({"message": f"Hello, my parcel {code} has not arrived yet "
                                               f"(day {i}).", "order_id": code}) + "\n")
    (tmp_path / "mine/task").mkdir(parents=True)
    (tmp_path / "mine/task/order_ids.yaml").write_text(
        TASK.format(train=data / "train.jsonl", test=data / "test.jsonl"))
    job = subprocess.run(
        [sys.executable, "-m", "prompt_vs_finetune", "--config-dir", str(tmp_path / "mine"),
         "task=order_ids", "model=tiny", "model.tiny.n_layer=1", "arm=zero_shot"],
        cwd=tmp_path, env=job_env(), capture_output=True, text=True, timeout=600)
    assert job.returncode == 0, job.stderr[-3000:]
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    run = client.search_runs([client.get_experiment_by_name("order_ids").experiment_id])[0]
    assert run.info.status == "FINISHED" and run.data.tags["quality_metric"] == "test/exact_match"
    assert 0 <= run.data.metrics["test/exact_match"] <= 1 and run.data.metrics["data/n_test"] == 4
    per_example = json.loads(open(client.download_artifacts(
        run.info.run_id, "per_example.json", str(tmp_path))).read())
    assert per_example["metric"] == "exact_match" and len(per_example["values"]) == 4

    main(["--tracking-uri", f"sqlite:///{tmp_path / 'mlflow.db'}", "--out",
          str(tmp_path / "report"), "--no-mlflow"])
    text = (tmp_path / "report" / "report.md").read_text()
    assert "## order_ids / tiny" in text and "exact_match [95% interval]" in text


class HalfDone(TaskType):  # defines none of the abstract methods
    pass


def test_a_type_missing_a_method_is_one_line_before_any_work():
    from prompt_vs_finetune.errors import UserError

    with pytest.raises(UserError, match=r"does not define answer, .*score, taught; a TaskType"):
        task_type(f"{__name__}.HalfDone")
