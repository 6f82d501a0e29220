"""`dvc repro` of the default study, end to end, in a temporary copy of the repository."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[1]
STUDY = """model: tiny
tasks: [intent_sample, summary_sample]
arms: [zero_shot, full_finetune]
seeds: [0]
overrides: "test_size=16 model.max_epochs=2 model.tiny.n_layer=1"
"""

pytestmark = pytest.mark.skipif(shutil.which("git") is None, reason="needs git")


def sh(cwd, *cmd):
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}:{os.environ['PATH']}",
               HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1")
    env.pop("MLFLOW_TRACKING_URI", None)
    result = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, (cmd, result.stdout[-2000:], result.stderr[-2000:])
    return result.stdout


def test_dvc_repro_default_study_offline(tmp_path):
    repo = tmp_path / "repo"
    files = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True,
                           check=True).stdout.split()
    for name in files:
        (repo / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, repo / name)
    (repo / "conf/study.yaml").write_text(STUDY)
    sh(repo, "git", "init", "-q")
    sh(repo, "git", "-c", "user.name=t", "-c", "user.email=t@t", "add", "-A")
    sh(repo, "git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "study")

    out = sh(repo, "dvc", "repro")
    assert out.count("Running stage 'run@") == 4 and "Running stage 'report'" in out
    for task in ("intent_sample", "summary_sample"):
        assert (repo / f"data/{task}/test.jsonl").is_file()
        for arm in ("zero_shot", "full_finetune"):
            assert (repo / f"results/{task}/{arm}/seed0/metrics.json").is_file()
    table = (repo / "reports/table.csv").read_text().splitlines()
    assert len(table) == 1 + 4  # one row per task x arm
    assert len(list((repo / "reports/plots").glob("*.png"))) == 8  # 3 per task + cost by volume
    assert "results/intent_sample/zero_shot/seed0/metrics.json" in sh(repo, "dvc", "metrics",
                                                                       "show")

    assert "Running stage" not in sh(repo, "dvc", "repro")  # nothing to reproduce

    task = repo / "conf/task/summary_sample.yaml"  # its own template, over the shared one
    task.write_text(task.read_text() + 'templates:\n  default: "{text}\\nSummary:"\n')
    rerun = sh(repo, "dvc", "repro")
    ran = {line.split("'")[1] for line in rerun.splitlines() if line.startswith("Running stage")}
    assert ran == {"run@summary_sample-zero_shot-0", "run@summary_sample-full_finetune-0",
                   "report"}


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
    listed = sh(ROOT, "dvc", "stage", "list", f"pipelines/{study}/dvc.yaml").splitlines()
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
    listed = sh(tmp_path, "dvc", "stage", "list", "pipelines/model_scale/dvc.yaml").splitlines()
    api = sorted(line.split()[0].split("@")[1] for line in listed if ":api@" in line)
    assert len(listed) == 2 + 144 + 12 + 1
    assert api == sorted(f"{task}-claude-{arm}-{seed}" for task in ("banking77", "dialogsum")
                         for arm in ("zero_shot", "few_shot") for seed in range(3))
