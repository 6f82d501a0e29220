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
    jsonl("one_class.jsonl", [{"text": f"refund {i}", "label": "refund"} for i in range(20)])
    jsonl("list_label.jsonl", [{"text": f"bill {i}", "label": ["billing", "refund"]}
                               for i in range(10)])
    # an integer column with one blank cell: pandas reads it as floats (3 -> 3.0)
    (folder / "blank_int.csv").write_text("text,label\n" + "".join(
        f"bill {i},{'' if i == 0 else i % 3}\n" for i in range(30)))
    (folder / "int.csv").write_text("text,label\n" + "".join(
        f"bill {i},{i % 3}\n" for i in range(30, 45)))
    for name, target in (("loop_a.jsonl", "loop_b.jsonl"), ("loop_b.jsonl", "loop_a.jsonl")):
        if not (folder / name).is_symlink():
            (folder / name).symlink_to(target)
    if not (folder / "fifo.jsonl").exists():
        os.mkfifo(folder / "fifo.jsonl")


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
    # issue 28: an arm that is another arm, a fit on nothing, degenerate data
    "zero-shot that trains": (["arm=zero_shot", "arm.fit=true"],
                              r"arm.fit=true makes arm=zero_shot another arm under its name"),
    "few-shot without demos": (["arm=few_shot", "arm.demos=false"],
                               r"arm.demos=false makes arm=few_shot another arm"),
    "lora without adapters": (["arm=lora", "arm.lora=null"],
                              r"arm.lora=null makes arm=lora another arm"),
    "a LoRA rank wider than the model": (["arm=lora", "arm.lora.r=4096"],
                                         r"arm.lora.r=4096 is above 128"),
    "task.val_fraction=-1": (["task.val_fraction=-1"], r"task.val_fraction=-1 is outside"),
    "a budget all validation": (["arm=full_finetune", "train_size=2", "task.val_fraction=0.9"],
                                r"train_size=2 leaves no train example once "),
    "one class": ([*files(f"{F}/one_class.jsonl", f"{F}/one_class.jsonl")],
                  r"has 1 class\(es\) \(refund\): any classifier scores 1.0"),
    "a test of one example": (["test_size=1"], r"the test split has 1 example\(s\)"),
    "a list as a label": ([*files(f"{F}/list_label.jsonl")], r"a label in .* is a list"),
    "a negative price": (["cost.usd_per_hour=-1"], r"cost.usd_per_hour=-1 is not >= 0"),
    "a zero FLOP rate": (["cost.prompt_flops_per_second=0"],
                         r"cost.prompt_flops_per_second=0 is not > 0"),
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
    "a symbolic link loop": ([*files(f"{F}/loop_a.jsonl")],
                             r"loop_a.jsonl \(task.data_files.train\) is a symbolic link that "
                             r"leads nowhere"),
    "a named pipe": ([*files(f"{F}/fifo.jsonl")], r"fifo.jsonl \(task.data_files.train\) is "
                                                  r"not a regular file \(a pipe"),
    "a folder named x.csv": ([*files(f"{F}/dir.csv", f"{F}/ok.csv")],
                             r"dir.csv \(task.data_files.train\) is a folder, not a file"),
    "model.name_or_path naming a file": (["model.tiny=null", "model.name_or_path={files}"
                                          "/weights.bin"],
                                         r"model.name_or_path=.*weights.bin is a file; name the "
                                         r"folder"),
    "arm.lora.r=0": (["arm=lora", "arm.lora.r=0"], r"arm.lora.r=0 is not >= 1"),
    # issue 28: late failures (after the run existed) and tracebacks, now before any run
    "all data as validation": (["arm=full_finetune", "task.val_fraction=0.999"],
                               r"train_size=all leaves no train example once"),
    "a 1-token context": (["model.max_length=1"],
                          r"do not fit the 1-token context; .*raise model.max_length"),
    "an unknown metric": (["task.metrics=[bleu]"], r"names bleu, not a classification metric"),
    "a precision Lightning refuses": (["trainer.precision=bogus"],
                                      r"Lightning refuses the trainer config: Precision 'bogus'"),
    "an accelerator this machine lacks": (["trainer.accelerator=mps"],  # Linux has no MPS
                                          r"Lightning refuses the trainer config: `MPSAcc"),
    "several devices without a DDP trainer": (["trainer.devices=4"],
                                              r"trainer.devices=4 needs .*; add trainer=ddp"),
    "no gradient accumulation": (["arm=full_finetune", "trainer.accumulate_grad_batches=0"],
                                 r"trainer.accumulate_grad_batches=0 is not >= 1"),
    "LoRA targets as one string": (["arm=lora", "arm.lora.target_modules=c_attn"],
                                   r"is one string, not a list; give a list: "
                                   r"arm.lora.target_modules=\[c_attn\]"),
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


def test_an_integer_column_with_a_blank_cell_keeps_its_label_names(tmp_path):
    """Train read as floats (one blank cell), test as integers: one label set, "0" to "2",
    not six labels half of them "1.0"; the blank row is dropped as an empty label."""
    write_files(tmp_path / "files")
    data = files(tmp_path / "files/blank_int.csv", tmp_path / "files/int.csv")
    results = job.run(compose_config(tmp_path, *FAST, *data))
    assert results["data/n_classes"] == 3 and results["data/dropped_empty_rows"] == 1


def test_repeated_rows_are_counted(tmp_path):
    """Every train row twice: the budget counts them (data/n_labels), and the run says how
    many repeat (data/duplicate_rows)."""
    rows = [{"text": f"{word} {i}", "label": word} for i in range(8)
            for word in ("billing", "refund")]
    path = tmp_path / "twice.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows * 2))
    write_files(tmp_path / "files")
    results = job.run(compose_config(tmp_path, *FAST,
                                     *files(path, tmp_path / "files/test.jsonl")))
    assert results["data/duplicate_rows"] == 16 and results["data/n_labels"] == 0  # zero-shot


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
    from .test_cli import job_env

    env = job_env()  # offline, forked from the suite's warm worker
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
