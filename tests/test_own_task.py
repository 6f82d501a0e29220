"""A user's own task, as the README's "Your own task" adds it: a YAML file and CSV files in the
user's folders, nothing in the package; labels taken from the data (`yes` / `no` included)."""

import csv
import subprocess
import sys
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from prompt_vs_finetune.project import init

from .test_cli import job_env

TASK = """defaults:
  - _intent          # the shipped intent templates and metrics
  - _self_
name: faq
data_files:          # relative: to the project folder (the one pvf-init made)
  train: data/faq_train.csv
  test: data/faq_test.csv
text_field: question
label_field: answer
splits: {train: train, validation: null, test: test}
"""
QUESTIONS = {"yes": ["is the shop open on sunday {}", "can I pay by card {}"],
             "no": ["do you sell cars {}", "is delivery free abroad {}"]}


def pvf(cwd, *args):
    env = job_env()
    env.pop("PVF_PROJECT", None)
    return subprocess.run([sys.executable, "-m", "prompt_vs_finetune", *args], cwd=cwd,
                          env=env, capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    """A project made by pvf-init, the user's task in a folder of its own, data as CSV."""
    root = tmp_path_factory.mktemp("project")
    init([str(root)])
    (root / "my_tasks/task").mkdir(parents=True)
    (root / "my_tasks/task/faq.yaml").write_text(TASK)
    (root / "data").mkdir()
    for split, n in (("train", 12), ("test", 4)):
        with open(root / f"data/faq_{split}.csv", "w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(["question", "answer"])
            for answer, templates in QUESTIONS.items():
                for i in range(n):
                    writer.writerow([templates[i % 2].format(f"{split}{i}"), answer])
    (root / "work").mkdir()  # pvf runs from below the project folder
    return root


FAST = ("model=tiny", "model.tiny.n_layer=1", "arm=zero_shot", "test_size=8")


@pytest.mark.parametrize("route", ["searchpath", "config-dir"])
def test_own_task_runs_through_both_hydra_routes(project, route):
    tasks = project / "my_tasks"
    how = [f"hydra.searchpath=[file://{tasks}]"] if route == "searchpath" else \
        ["--config-dir", str(tasks)]
    result = pvf(project / "work", *how, "task=faq", *FAST, f"mlflow.run_name={route}")
    assert result.returncode == 0, result.stderr[-3000:]
    client = MlflowClient(f"sqlite:///{project / 'work' / 'mlflow.db'}")
    run = client.search_runs([client.get_experiment_by_name("faq").experiment_id],
                             f"attributes.run_name = '{route}'")[0]
    assert run.info.status == "FINISHED"
    assert run.data.metrics["data/n_test"] == 8 and run.data.metrics["data/n_classes"] == 2
    config = client.download_artifacts(run.info.run_id, "config.yaml", str(project / route))
    assert "labels: null" in open(config).read()  # taken from the data, not written out
    assert run.data.tags["config_source"].endswith(str(project / "conf"))
    # the last line says where the run went; the libraries' INFO lines and warnings stay out
    assert result.stdout.strip().splitlines()[-1].endswith(
        f"logged to experiment 'faq' in sqlite:///mlflow.db: http://127.0.0.1:5000/#/"
        f"experiments/{run.info.experiment_id}/runs/{run.info.run_id}?workflowType="
        "machine_learning once `mlflow ui --backend-store-uri sqlite:///mlflow.db` runs in "
        "this folder")
    assert "INFO mlflow" not in result.stderr and "deprecated" not in result.stderr
    assert "Warning" not in result.stderr, result.stderr


def test_own_task_typo_is_one_line_on_both_routes(project):
    tasks = project / "my_tasks"
    for how in ([f"hydra.searchpath=[file://{tasks}]"], ["--config-dir", str(tasks)]):
        result = pvf(project / "work", *how, "task=fqa", *FAST)
        assert result.returncode == 2
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and "unknown task 'fqa'" in lines[0] and "faq" in lines[0], lines


def test_the_suite_composes_from_the_committed_configs():
    """A user's edit to the working tree's conf/ (`dvc exp run -S` leaves one there) does not
    reach the suite: it composes from conf/ as committed (conftest, PVF_PROJECT)."""
    from prompt_vs_finetune.cli import config_dir

    from .conftest import PRISTINE_PROJECT

    root = Path(__file__).parents[1]
    if not PRISTINE_PROJECT:
        pytest.skip("not a git checkout, or PVF_TEST_CONF=worktree")
    assert Path(config_dir()) == Path(PRISTINE_PROJECT).resolve() / "conf"
    committed = subprocess.run(["git", "-C", str(root), "show", "HEAD:conf/arm/lora.yaml"],
                               capture_output=True, text=True, check=True).stdout
    assert (Path(config_dir()) / "arm/lora.yaml").read_text() == committed
