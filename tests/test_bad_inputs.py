"""Every bad input a user or operator was seen to hit (issue 15, points 6 and 7): one line that
names the cause and the fix, raised before any MLflow run opens; integer labels just work."""

import json
import os
import sqlite3
import subprocess
import sys

import pytest
from mlflow.tracking import MlflowClient

from prompt_vs_finetune import job
from prompt_vs_finetune.errors import UserError

from .conftest import compose_config

FAST = ("task=intent_sample", "model=tiny", "model.tiny.n_layer=1", "test_size=4",
        "model.max_epochs=1")


def write_files(folder):
    """The bad (and the integer-labelled) data files the table points at."""
    folder.mkdir(exist_ok=True)

    def jsonl(name, rows):
        (folder / name).write_text("".join(json.dumps(r) + "\n" for r in rows))

    jsonl("int.jsonl", [{"text": f"my bill {i}", "label": i % 3} for i in range(30)])
    jsonl("number_text.jsonl", [{"text": 12345 if i == 0 else f"refund {i}",
                                 "label": ["refund", "billing"][i % 2]} for i in range(20)])
    jsonl("one.jsonl", [{"text": "refund please", "label": "refund"}])
    (folder / "bad.jsonl").write_text('{"text": "a", "label": "refund"}\n{"text": "b", '
                                      '"label": \n{"text": "c", "label": "billing"}\n')
    (folder / "header.csv").write_text("text,label\n")
    (folder / "ok.csv").write_text("text,label\n" + "".join(
        f"bill {i},billing\nrefund {i},refund\n" for i in range(10)))
    (folder / "latin1.csv").write_bytes("text,label\ncaf\xe9 bill,billing\n".encode("latin-1"))
    jsonl("test.jsonl", [{"text": f"{word} {i}", "label": word}
                         for i in range(10) for word in ("billing", "refund")])
    (folder / "binary.csv").write_bytes(bytes(range(256)) * 4)
    (folder / "dir.csv").mkdir(exist_ok=True)
    (folder / "weights.bin").write_text("not a model folder")


def files(train, test="{files}/test.jsonl") -> list[str]:
    """The task's files: a `label` column, whose values are the labels."""
    return [f"task.data_files={{train: {train}, test: {test}}}", "task.label_field=label",
            "task.labels=null"]


F = "{files}"  # replaced by the test's folder of bad files
CASES = {  # case: (overrides, the one line it must give)
    # point 6: tracebacks before
    "one-row train file, zero-shot": ([*files(f"{F}/one.jsonl")],
                                      r"the train split has 1 example\(s\): too few"),
    "one-row train file, fine-tune": ([*files(f"{F}/one.jsonl"), "arm=full_finetune"],
                                      r"the train split has 1 example\(s\)"),
    "task.val_fraction=0": (["task.val_fraction=0"], r"task.val_fraction=0 is outside \(0, 1\)"),
    "test_size=0": (["test_size=0"], r"test_size=0 is not >= 1"),
    "test_size=-1": (["test_size=-1"], r"test_size=-1 is not >= 1"),
    "seed=-5": (["seed=-5"], r"seed=-5 is not 0\.\.4294967295"),
    "seed=abc": (["seed=abc"], r"seed='abc' is not a whole number"),
    "arm.lr=fast": (["arm=lora", "arm.lr=fast"], r"arm.lr='fast' is not a number"),
    "decoding.num_beams=0": (["task=summary_sample", "decoding.num_beams=0"],
                             r"decoding.num_beams=0 is not >= 1"),
    "arm.batch_size=0": (["arm=lora", "arm.batch_size=0"], r"arm.batch_size=0 is not >= 1"),
    "sampling, temperature=0": (["task=summary_sample", "decoding=sampling",
                                 "decoding.temperature=0"], r"decoding.temperature=0 is outside"),
    "model.max_length beyond the positions": (["model.max_length=5000"],
                                              r"model.max_length=5000 is beyond the 1024"),
    "results_file naming a folder": (["results_file={files}"],
                                     r"results_file=.* is a folder; name a file in it"),
    # point 7: wrong causes named before
    "malformed JSONL line": ([*files(f"{F}/bad.jsonl")],
                             r"bad.jsonl .* line 2 is not valid JSON"),
    "test CSV with only a header": ([*files(f"{F}/ok.csv", f"{F}/header.csv")],
                                    r"header.csv .* it has a header but no rows"),
    "latin-1 file": ([*files(f"{F}/latin1.csv", f"{F}/ok.csv")],
                     r"latin1.csv .* it is not UTF-8 text \(byte 0xe9"),
    "binary file": ([*files(f"{F}/binary.csv", f"{F}/ok.csv")],
                    r"binary.csv .* it is binary, not text"),
    "a folder named x.csv": ([*files(f"{F}/dir.csv", f"{F}/ok.csv")],
                             r"dir.csv \(task.data_files.train\) is a folder, not a file"),
    "model.name_or_path naming a file": (["model.tiny=null", "model.name_or_path={files}"
                                          "/weights.bin"],
                                         r"model.name_or_path=.*weights.bin is a file; name the "
                                         r"folder"),
    "arm.lora.r=0": (["arm=lora", "arm.lora.r=0"], r"arm.lora.r=0 is not >= 1"),
    "mlflow.experiment_name=''": (["mlflow.experiment_name=''"],
                                  r"mlflow.experiment_name='' is empty"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_bad_input_is_one_line_before_any_run(tmp_path, case):
    write_files(tmp_path / "files")
    overrides, message = CASES[case]
    overrides = [o.replace("{files}", str(tmp_path / "files")) for o in overrides]
    with pytest.raises(UserError, match=message) as raised:
        job.run(compose_config(tmp_path, *FAST, *overrides))
    assert "\n" not in str(raised.value)
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    assert not client.search_runs([e.experiment_id for e in client.search_experiments()])


@pytest.mark.parametrize("labels", [None, "{0: billing, 1: refund, 2: shipping}"])
def test_integer_label_columns_work(tmp_path, labels):
    """Integer labels (how most Hub sets store them): the data's values, or a mapping."""
    write_files(tmp_path / "files")
    data = files(tmp_path / "files/int.jsonl", tmp_path / "files/int.jsonl")
    mapping = [f"task.labels={labels}"] if labels else []  # after task.labels=null
    results = job.run(compose_config(tmp_path, *FAST, *data, *mapping, "task.overlap=warn"))
    assert results["data/n_test"] == 4 and 0 <= results["test/accuracy"] <= 1


def test_a_number_in_the_text_column_is_text(tmp_path):
    write_files(tmp_path / "files")
    data = files(tmp_path / "files/number_text.jsonl", tmp_path / "files/number_text.jsonl")
    results = job.run(compose_config(tmp_path, *FAST, *data))
    assert results["data/n_test"] == 4


def test_a_damaged_tracking_store_is_one_line(tmp_path):
    db = tmp_path / "mlflow.db"
    with sqlite3.connect(db) as connection:
        connection.execute("create table t (x text)")
        connection.executemany("insert into t values (?)", [("x" * 500,)] * 200)
    raw = bytearray(db.read_bytes())
    raw[100:4096] = b"\xab" * 3996  # the schema page, past the file header
    db.write_bytes(raw)
    with pytest.raises(UserError, match=r"cannot use the MLflow tracking store .*malformed"):
        job.run(compose_config(tmp_path, *FAST))


def test_an_unwritable_output_folder_is_one_line(tmp_path):
    """Hydra writes its run folder before the job starts: checked first, exit code 2."""
    env = dict(os.environ, HF_HUB_OFFLINE="1")
    result = subprocess.run([sys.executable, "-m", "prompt_vs_finetune", *FAST,
                             "hydra.run.dir=/proc/pvf/out"], cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 2
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("error: cannot write to /proc (where Hydra puts hydra.run.dir: ")
    assert line.endswith("run from a writable folder, or set hydra.run.dir=<a writable folder>")


def test_a_conf_older_than_the_code_is_one_line(tmp_path):
    """A project's conf/ (pvf-init's copy) from before a key existed: the key is named."""
    from omegaconf import open_dict

    from prompt_vs_finetune.cli import missing_key

    cfg = compose_config(tmp_path, *FAST)
    with open_dict(cfg):
        del cfg.scorer["calibration"]
    with pytest.raises(Exception) as raised:  # noqa: B017 - OmegaConf's own error type
        job.run(cfg)
    line = missing_key(raised.value)
    assert line.startswith("the config has no key scorer.calibration: ") and "\n" not in line
