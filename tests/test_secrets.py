"""No secret on disk: a key given as an override or inside a URL reaches no file a run writes
(Hydra's .hydra/ and multirun.yaml, the job log, MLflow's store and artifacts)."""

import subprocess
import sys

from prompt_vs_finetune.tracking.secrets import redact

from .test_cli import job_env

SECRET = "sk-SECRET-4f1c9e"


def test_overrides_and_urls_are_redacted():
    assert redact(["+model.api.api_key=" + SECRET, "seed=1"]) == ["+model.api.api_key=***",
                                                                  "seed=1"]
    assert redact("a=1,model.token=" + SECRET + ",b=2") == "a=1,model.token=***,b=2"
    assert redact("https://h/v1?api_key=" + SECRET + "&x=1") == "https://h/v1?api_key=***&x=1"
    assert redact({"api_key": SECRET, "base_url": "postgres://u:" + SECRET + "@h/db"}) == {
        "api_key": "***", "base_url": "postgres://u:***@h/db"}
    assert redact("arm.lr=0.1,tokens=5") == "arm.lr=0.1,tokens=5"  # not secret-looking


def test_no_file_a_sweep_writes_holds_the_secret(tmp_path):
    env = job_env()  # offline, forked from the suite's warm worker
    result = subprocess.run(
        [sys.executable, "-m", "prompt_vs_finetune", "-m", "task=intent_sample", "model=tiny",
         "model.tiny.n_layer=1", "arm=zero_shot", "test_size=2", f"+model.api_key={SECRET}",
         f"+task.source_url='https://data.invalid/x.csv?token={SECRET}'"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    written = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert any(p.name == "multirun.yaml" for p in written)
    assert any(p.name == "overrides.yaml" for p in written)
    holding = [str(p) for p in written if SECRET.encode() in p.read_bytes()]
    assert not holding
    assert SECRET not in result.stdout + result.stderr
