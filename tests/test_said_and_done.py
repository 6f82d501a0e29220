"""Issue 38, through `pvf` as a subprocess: a study whose objective no job logs, a key nothing
reads or one given twice, a secret inside a value, a data file still being written or one
that cannot be read. Each is one `error:` line, no traceback, and no run left RUNNING."""

import ctypes
import json
import subprocess
import sys

from prompt_vs_finetune.cli import config_error

from .test_cli import job_env, pvf, runs_in

SECRET = "sk-SECRET-0b7e41d2"
TINY = ("task=intent_sample", "model=tiny", "model.tiny.n_layer=1", "test_size=8")


def one_error(result, cwd) -> str:
    """The one `error:` line of a command that left no traceback and no RUNNING run."""
    output = result.stdout + result.stderr  # a sweep's jobs log to stdout
    errors = [line for line in output.splitlines() if "error: " in line]
    assert len(errors) == 1 and "Traceback" not in output, output[-3000:]
    if (cwd / "mlflow.db").exists():
        _, runs = runs_in(cwd, parents=True)
        assert "RUNNING" not in {r.info.status for r in runs}
    return errors[0]


def test_a_study_whose_objective_no_job_logs_fails_its_trials_and_exits_1(tmp_path):
    result = pvf(tmp_path, "-m", "hydra/sweeper=lora_optuna", "hydra.sweeper.n_trials=1",
                 *TINY, "arm=lora", "train_size=32", "model.max_epochs=1",
                 "objective=val/bset_loss")
    assert result.returncode == 1 and "sweep: 0 finished, 1 failed" in result.stderr
    line = one_error(result, tmp_path)
    assert line.endswith("error: objective=val/bset_loss is not a metric this job logged; "
                         "its val/ metrics: val/accuracy, val/best_loss")


def test_a_key_nothing_reads_or_one_given_twice_is_refused_before_hydra_writes(tmp_path):
    for args, message in (
            (["+foo=1"], "error: +foo: no config group defines the key foo, so nothing would "
                         "read it; check its spelling (`pvf --cfg job` prints every key), or "
                         "keep a note of your own as +notes.foo=..."),
            (["seed=1", "seed=2"], "error: seed is given twice, with different values (Hydra "
                                   "would silently keep the last); give it once (a later "
                                   "++seed=... replaces the value on purpose)"),
            (["arm=lora", "arm=zero_shot"], "error: arm is given twice, with different values "
                                            "(Hydra would silently keep the last); give it "
                                            "once")):
        result = pvf(tmp_path, *TINY, *args, timeout=120)
        assert result.returncode == 2 and one_error(result, tmp_path) == message
    assert not (tmp_path / "outputs").exists()
    # what stays allowed: a key inside a group, a note, the same value twice, ++ on purpose
    for args in (["+model.my_option=1", "+notes.why=rerun"], ["seed=1", "seed=1"],
                 ["seed=1", "++seed=2"]):
        assert config_error(args) is None, args


def test_a_secret_inside_a_value_is_refused_before_hydra_writes(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "prompt_vs_finetune", *TINY, f"mlflow.run_name={SECRET}-name"],
        cwd=tmp_path, env=job_env(PVF_WARM="0", PVF_TEST_API_KEY=SECRET), capture_output=True,
        text=True, timeout=120)
    assert result.returncode == 2
    assert one_error(result, tmp_path) == (
        "error: mlflow.run_name holds the value of $PVF_TEST_API_KEY; a secret is read from the "
        "environment where it is used, never through a config value: remove the "
        "interpolation, or the value")
    assert not list(tmp_path.iterdir())  # no outputs/, no .hydra/*.yaml, no store


def _data(folder, n=280) -> tuple[str, ...]:
    rows = "".join(json.dumps({"text": f"refund my order {i}", "label": ["refund", "bill"][i % 2]})
                   + "\n" for i in range(n))
    for name in ("train.jsonl", "test.jsonl"):
        (folder / name).write_text(rows)
    return (f"task.data_files={{train: {folder / 'train.jsonl'}, test: {folder / 'test.jsonl'}}}",
            "task.label_field=label", "task.labels=null")


def test_a_data_file_rewritten_in_a_loop_is_refused(tmp_path):
    """Another process truncates and rewrites it without a pause: it never stands still."""
    data = _data(tmp_path)
    rows = (tmp_path / "train.jsonl").read_text().splitlines(keepends=True)
    writer = subprocess.Popen([sys.executable, "-c", f"""
import time
rows = {rows!r}
while True:
    with open({str(tmp_path / 'train.jsonl')!r}, "w") as f:
        for i in range(0, len(rows), 70):
            f.writelines(rows[i:i + 70]); f.flush(); time.sleep(0.05)
"""])
    try:
        result = pvf(tmp_path, *TINY, "arm=zero_shot", *data, timeout=120)
    finally:
        writer.kill()
    assert result.returncode == 2
    assert "train.jsonl (task.data_files.train) changed while it was read, 3 times; run " \
           "again once whatever writes it has finished" in one_error(result, tmp_path)


def _unprivileged() -> None:
    """As root, without the capabilities that let root read any file (chmod 000 then stops
    root too); as anyone else, nothing to drop."""
    libc = ctypes.CDLL(None, use_errno=True)
    for capability in (1, 2):  # CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH
        libc.prctl(24, capability, 0, 0, 0)  # PR_CAPBSET_DROP: the job's exec loses it


def test_a_data_file_the_user_cannot_read_is_one_line(tmp_path):
    data = _data(tmp_path, 20)
    (tmp_path / "train.jsonl").chmod(0)
    result = subprocess.run(
        [sys.executable, "-m", "prompt_vs_finetune", *TINY, "arm=zero_shot", *data],
        cwd=tmp_path, env=job_env(PVF_WARM="0"), capture_output=True, text=True, timeout=300,
        preexec_fn=_unprivileged)  # a new process: a warm worker's fork keeps its capabilities
    assert result.returncode == 2
    assert one_error(result, tmp_path).endswith(
        f"error: cannot read {tmp_path / 'train.jsonl'} (task.data_files.train): Permission "
        "denied; make it readable (chmod u+r) or point task.data_files at a readable copy")
