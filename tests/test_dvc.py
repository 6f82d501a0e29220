"""`dvc repro` of the default study, end to end, in a temporary copy of the repository."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import PRISTINE_PROJECT

ROOT = Path(__file__).parents[1]
STUDY = """model: tiny
tasks: [intent_sample, summary_sample]
arms: [zero_shot, full_finetune]
seeds: [0]
decoding: greedy
overrides: "test_size=8 model.max_epochs=1 model.tiny.n_layer=1"
"""

pytestmark = pytest.mark.skipif(shutil.which("git") is None, reason="needs git")


def sh(cwd, *cmd):
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}:{os.environ['PATH']}",
               HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1")
    env.pop("MLFLOW_TRACKING_URI", None)
    env.pop("PVF_PROJECT", None)  # the copy's own conf/, as DVC tracks it
    result = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, (cmd, result.stdout[-2000:], result.stderr[-2000:])
    return result.stdout


def test_dvc_repro_default_study_offline(tmp_path):
    repo = tmp_path / "repo"
    files = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True,
                           check=True).stdout.split()
    # The other studies' pipelines stay out: DVC parses every dvc.yaml and dvc.lock in a repo
    # at each command and stage, and real_model's 640 KB lock alone costs ~12 s a time here.
    for name in (f for f in files if not f.startswith("pipelines/")):
        (repo / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, repo / name)
    if PRISTINE_PROJECT:  # the configs as committed, not as a user may have edited them
        shutil.copytree(Path(PRISTINE_PROJECT) / "conf", repo / "conf", dirs_exist_ok=True)
    (repo / "conf/study.yaml").write_text(STUDY)
    sh(repo, "git", "init", "-q")
    commit(repo, "study")

    out = sh(repo, "dvc", "repro")
    assert out.count("Running stage 'run@") == 4 and "Running stage 'report'" in out
    for task in ("intent_sample", "summary_sample"):
        assert (repo / f"data/{task}/test.jsonl").is_file()
        for arm in ("zero_shot", "full_finetune"):
            assert (repo / f"results/{task}/{arm}/seed0/metrics.json").is_file()
    table = (repo / "reports/table.csv").read_text().splitlines()
    assert len(table) == 1 + 4  # one row per task x arm
    # one seed, one budget: quality vs cost and cost by volume per task; the rest noted
    assert len(list((repo / "reports/plots").glob("*.png"))) == 4
    assert "data:image/png;base64," in (repo / "reports/report.html").read_text()
    shown = sh(repo, "dvc", "metrics", "show", "reports/summary.json")
    assert "tasks.intent_sample/tiny.best.full_finetune" in shown
    assert not (repo / "cli.log").exists()  # prepare's Hydra log stays under outputs/

    assert "Running stage" not in sh(repo, "dvc", "repro")  # nothing to reproduce
    commit(repo, "study ran")
    assert not status(repo)  # results, reports and dvc.lock are versioned; data/ is ignored

    # The config that runs is the config DVC tracks: this copy's conf/, not the installed
    # package's (the suite's editable install points at another tree). Edited by hand (a
    # template) and the DVC way (a knob outside the study file), in one experiment: exactly
    # the stages that depend on either run.
    task = repo / "conf/task/summary_sample.yaml"  # its own template, over the shared one
    task.write_text(task.read_text() + 'templates:\n  default: "{text}\\nTL;DR:"\n')
    out = sh(repo, "dvc", "exp", "run", "-n", "lr3e-3",
             "-S", "conf/arm/full_finetune.yaml:lr=0.003")
    assert ran(out) == {"prepare@summary_sample",  # it tracks the task file whole
                        "run@summary_sample-zero_shot-0", "run@summary_sample-full_finetune-0",
                        "run@intent_sample-full_finetune-0", "report"}
    assert not [line for line in out.splitlines() if "WARNING" in line], out
    logged = run_params(repo, "summary_sample", "zero_shot")
    assert logged["task.template"] == "{text}\nTL;DR:" and logged["config_source"].startswith(
        str(repo.resolve()))
    assert logged["warm_start"] == "true"  # DVC's jobs fork from one warm worker (warm.py)
    assert run_params(repo, "intent_sample", "full_finetune")["arm.lr"] == "0.003"
    changed = sh(repo, "dvc", "exp", "show", "--only-changed", "--csv")
    header, *rows = changed.splitlines()
    # a params file's keys are prefixed with its path when a stage reads several
    assert "conf/arm/full_finetune.yaml:lr" in header.split(",")
    assert any(r.startswith("lr3e-3,") for r in rows)


STAGES = """stages:
  configs:
    wdir: ../..
    cmd: python pipelines/config_hashes.py pipelines/s/dvc.yaml pipelines/s/configs.json
    deps: [conf, src/prompt_vs_finetune, pipelines/s/data]
    outs:
      - pipelines/s/configs.json: {cache: false}
  run:
    matrix: {arm: [zero_shot, lora, hybrid]}
    wdir: ../..
    cmd: pvf task=intent_sample model=tiny arm=${item.arm} data_dir=pipelines/s/data
      results_file=pipelines/s/results/${item.arm}.json
    params:
      - pipelines/s/configs.json: ["run.${key}"]
    outs:
      - pipelines/s/results/${item.arm}.json: {cache: false}
"""


def test_a_study_stage_reruns_when_a_config_value_it_uses_changes(tmp_path):
    """A study's job stages take their composed config's hash (pipelines/config_hashes.py):
    a value one uses changes it, directly (lora.yaml's lr) or through another file (the weight
    decay the hybrid takes from its student's full_finetune.yaml); a file none composes
    (gpt2.yaml) changes none. Outputs are committed, not run: only the params are at stake."""
    for name in ("conf", "src/prompt_vs_finetune", "pipelines/config_hashes.py"):
        copy = shutil.copytree if (ROOT / name).is_dir() else shutil.copy2
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        copy(Path(PRISTINE_PROJECT or ROOT) / name if name == "conf" else ROOT / name,
             tmp_path / name)
    (tmp_path / "pipelines/s/data").mkdir(parents=True)
    (tmp_path / "pipelines/s/data/train.jsonl").write_text("{}\n")
    (tmp_path / "pipelines/s/dvc.yaml").write_text(STAGES)
    sh(tmp_path, "dvc", "init", "--no-scm", "-q")
    sh(tmp_path, "dvc", "repro", "pipelines/s/dvc.yaml:configs")
    (tmp_path / "pipelines/s/results").mkdir()
    for arm in ("zero_shot", "lora", "hybrid"):
        (tmp_path / f"pipelines/s/results/{arm}.json").write_text("{}")
    sh(tmp_path, "dvc", "commit", "-f", "-q", "pipelines/s/dvc.yaml")
    assert json.loads(sh(tmp_path, "dvc", "status", "--json", "pipelines/s/dvc.yaml")) == {}

    for name, old, new in (("arm/full_finetune", "weight_decay: 0.01", "weight_decay: 0.1"),
                           ("arm/lora", "lr: null", "lr: 1.0e-3"),
                           ("model/gpt2", "lora_lr: 2.0e-4", "lora_lr: 3.0e-4")):
        path = tmp_path / f"conf/{name}.yaml"
        assert old in path.read_text()
        path.write_text(path.read_text().replace(old, new))
    sh(tmp_path, "dvc", "repro", "pipelines/s/dvc.yaml:configs")
    changed = json.loads(sh(tmp_path, "dvc", "status", "--json", "pipelines/s/dvc.yaml"))
    assert set(changed) == {"pipelines/s/dvc.yaml:run@lora", "pipelines/s/dvc.yaml:run@hybrid"}


def commit(repo, message):
    sh(repo, "git", "add", "-A")
    sh(repo, "git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", message)


def status(repo):
    return sh(repo, "git", "status", "--porcelain").strip()


def ran(out):
    return {line.split("'")[1] for line in out.splitlines() if line.startswith("Running stage")}


def run_params(repo, task, arm):
    """The params of the newest run of task x arm in the copy's MLflow store."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"sqlite:///{repo / 'mlflow.db'}")
    experiment = client.get_experiment_by_name(task)
    run = client.search_runs([experiment.experiment_id], f"tags.arm = '{arm}'",
                             order_by=["attributes.start_time DESC"], max_results=1)[0]
    return {**run.data.params, **run.data.tags}


def job_stages(cwd, study):
    """`dvc stage list` of a study, less its `configs` stage (the hashes its job stages take)."""
    listed = sh(cwd, "dvc", "stage", "list", f"pipelines/{study}/dvc.yaml").splitlines()
    assert sum(":configs " in line for line in listed) == 1
    return [line for line in listed if ":configs " not in line]


@pytest.mark.parametrize(("study", "stages"), [
    # prepare + finetune (1 task x 2 arms x 5 budgets x 3 seeds) + fewshot (4 k x 3) + report
    ("data_efficiency", 1 + 30 + 12 + 1),
    # prepare (2 tasks) + zero_shot (2 x 3 templates) + few_shot (2 x 3 x 3 orders x 3) + report
    ("prompt_sensitivity", 2 + 6 + 54 + 1),
    # prepare (2 tasks) + run (2 tasks x 6 models x 4 arms x 3 seeds) + api (none) + report
    ("model_scale", 2 + 144 + 0 + 1),
])
def test_further_studies_render(study, stages):
    """Each pipelines/<study>/dvc.yaml renders its matrix from its own study.yaml."""
    listed = job_stages(ROOT, study)
    assert len(listed) == stages
    if study == "data_efficiency":
        assert any("finetune@banking77-lora-all-2" in line for line in listed)
    if study == "model_scale":
        assert any("run@dialogsum-gpt2-xl-full_finetune-2" in line for line in listed)
        assert not any(":api@" in line for line in listed)  # api_models: [] renders none


def test_model_scale_renders_api_models(tmp_path):
    """api_models=[claude] adds its prompting arms only: 2 tasks x 2 arms x 3 seeds."""
    shutil.copytree(ROOT / "pipelines/model_scale", tmp_path / "pipelines/model_scale")
    study = tmp_path / "pipelines/model_scale/study.yaml"
    study.write_text(study.read_text().replace("api_models: []", "api_models: [claude]"))
    sh(tmp_path, "dvc", "init", "--no-scm", "-q")
    listed = job_stages(tmp_path, "model_scale")
    api = sorted(line.split()[0].split("@")[1] for line in listed if ":api@" in line)
    assert len(listed) == 2 + 144 + 12 + 1
    assert api == sorted(f"{task}-claude-{arm}-{seed}" for task in ("banking77", "dialogsum")
                         for arm in ("zero_shot", "few_shot") for seed in range(3))
