import json
from pathlib import Path

import pytest
from omegaconf import OmegaConf, open_dict

from prompt_vs_finetune.config import check_config
from prompt_vs_finetune.errors import UserError
from prompt_vs_finetune.tasks import Task, data_labels, label_budget, limit_test, load_splits

from .conftest import compose_config


def write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def local_task(tmp_path, train_rows, test_rows, **changes):
    cfg = compose_config(tmp_path, "task=intent_sample").task
    OmegaConf.set_struct(cfg, False)
    cfg.label_field, cfg.labels = "label", {"refund": "refund", "billing": "billing"}
    cfg.data_files = {"train": str(write_jsonl(tmp_path / "train.jsonl", train_rows)),
                      "test": str(write_jsonl(tmp_path / "test.jsonl", test_rows))}
    for key, value in changes.items():
        OmegaConf.update(cfg, key, value)
    return cfg


ROWS = [{"text": f"please refund order {i}", "label": "refund"} for i in range(10)] + [
    {"text": f"my bill {i} is wrong", "label": "billing"} for i in range(10)]


def test_shipped_sample_loads_with_a_seeded_validation_split(tmp_path):
    cfg = compose_config(tmp_path, "task=intent_sample").task
    source, _ = load_splits(cfg)
    assert set(source) == {"train", "test"}  # validation is carved from the label budget
    a, b = (label_budget(source, None, cfg.val_fraction, data_seed=0) for _ in range(2))
    c = label_budget(source, None, cfg.val_fraction, data_seed=1)
    assert set(a) == {"train", "validation", "test"}
    assert a.column_names["train"] == ["text", "label"]
    assert len(a["train"]) + len(a["validation"]) == 280 and len(a["test"]) == 168
    assert a["validation"]["text"] == b["validation"]["text"]
    assert a["validation"]["text"] != c["validation"]["text"]
    assert not set(a["validation"]["text"]) & set(a["train"]["text"])
    assert set(a["train"]["label"]) == set(cfg.labels)


def test_csv_with_renamed_columns(tmp_path):
    path = tmp_path / "train.csv"
    path.write_text("message,category\n" + "".join(f"my bill {i},billing\n" for i in range(9)))
    cfg = local_task(tmp_path, ROWS, ROWS, text_field="message", label_field="category")
    cfg.data_files = {"train": str(path), "test": str(path)}
    splits, _ = load_splits(cfg)
    assert splits["test"]["text"][0] == "my bill 0" and splits["test"]["label"][0] == "billing"


def test_missing_data_file_names_the_file(tmp_path):
    cfg = local_task(tmp_path, ROWS, ROWS)
    cfg.data_files.test = str(tmp_path / "nope.jsonl")
    expected = r"data file not found: .*nope\.jsonl \(task\.data_files\.test\)"
    with pytest.raises(UserError, match=expected):
        load_splits(cfg)


def test_missing_label_column_names_the_column(tmp_path):
    cfg = local_task(tmp_path, ROWS, ROWS, label_field="intent")
    expected = r"column 'intent' \(task\.label_field\) not found.*available columns: text, label"
    with pytest.raises(UserError, match=expected):
        load_splits(cfg)


def test_unknown_label_is_reported(tmp_path):
    cfg = local_task(tmp_path, ROWS, ROWS + [{"text": "hi", "label": "greeting"}])
    found = data_labels(load_splits(cfg)[0])
    with pytest.raises(UserError, match="label\\(s\\) not in task.labels: greeting"):
        Task.from_config(cfg, found)


def test_labels_come_from_the_data_when_the_task_lists_none(tmp_path):
    """No `labels:`: every label in the data, verbalized by the rule; `yes`/`no` stay text."""
    rows = [{"text": f"is it open {i}", "label": "yes"} for i in range(4)] + [
        {"text": f"closed {i}", "label": "no"} for i in range(4)] + [
        {"text": "lost card", "label": "card_lost-or_stolen"}]
    cfg = local_task(tmp_path, rows, rows, labels=None)
    task = Task.from_config(cfg, data_labels(load_splits(cfg)[0]))
    assert task.labels == {"card_lost-or_stolen": "card lost or stolen", "no": "no", "yes": "yes"}
    cfg.verbalizer = "as_is"
    assert Task.from_config(cfg, ["a_b"]).labels == {"a_b": "a_b"}


def test_yaml_booleans_as_label_keys_name_the_trap(tmp_path):
    """`yes: yes` unquoted in YAML is {True: True}: the error says so, not "unknown label"."""
    cfg = local_task(tmp_path, ROWS, ROWS)
    cfg.labels = OmegaConf.create("yes: yes\nno: no\n")
    with pytest.raises(UserError, match=r"read as the boolean True: YAML reads unquoted yes/no"):
        Task.from_config(cfg, ["no", "yes"])


def test_data_paths_resolve_against_the_project_folder(tmp_path, monkeypatch):
    """Relative task.data_files are relative to the project (the folder with conf/), wherever
    pvf runs from below it; pkg:// names a shipped file."""
    from prompt_vs_finetune.project import data_path

    monkeypatch.delenv("PVF_PROJECT", raising=False)  # the suite's pristine conf/ (conftest)
    (tmp_path / "conf").mkdir()
    (tmp_path / "conf/config.yaml").write_text("defaults: []\n")
    (tmp_path / "sub").mkdir()
    monkeypatch.chdir(tmp_path / "sub")
    assert data_path("data/x.csv", "k") == str(tmp_path.resolve() / "data/x.csv")
    assert data_path("/abs/x.csv", "k") == "/abs/x.csv"
    shipped = data_path("pkg://prompt_vs_finetune/resources/datasets/intent_sample/test.jsonl",
                        "k")
    assert shipped.endswith("intent_sample/test.jsonl") and Path(shipped).is_file()
    with pytest.raises(UserError, match="names package 'nope', which is not installed"):
        data_path("pkg://nope/x.csv", "task.data_files.train")


def test_empty_text_rows_are_dropped_and_counted_or_an_error(tmp_path):
    cfg = local_task(tmp_path, ROWS + [{"text": "  ", "label": "refund"},
                                       {"text": None, "label": "refund"}], ROWS)
    splits, dropped = load_splits(cfg)
    assert len(splits["train"]) == 20 and dropped == 2
    with open_dict(cfg):
        cfg.empty_rows = "error"
    with pytest.raises(UserError, match=r"has 2 rows with empty text or no label; fix the data, "
                                        r"or set task.empty_rows=drop"):
        load_splits(cfg)


def test_unsupported_file_type(tmp_path):
    cfg = local_task(tmp_path, ROWS, ROWS)
    (tmp_path / "train.txt").write_text("x")
    cfg.data_files.train = str(tmp_path / "train.txt")
    with pytest.raises(UserError, match="unsupported data file type '.txt'"):
        load_splits(cfg)


def test_the_label_budget_holds_train_and_validation(tmp_path):
    """train_size=10 with val_fraction 0.2: 8 train + 2 validation, all inside the budget."""
    source, _ = load_splits(local_task(tmp_path, ROWS, ROWS))
    limited = limit_test(label_budget(source, 10, 0.2, data_seed=0), 3)
    assert len(limited["train"]) == 8 and len(limited["validation"]) == 2
    assert len(limited["test"]) == 3
    labelled = [*limited["train"]["text"], *limited["validation"]["text"]]
    assert len(set(labelled)) == 10 and set(labelled) <= set(source["train"]["text"])
    with pytest.raises(UserError, match="train_size=500 but the task has 20 labelled"):
        label_budget(source, 500, 0.2, data_seed=0)


def test_a_source_validation_split_is_budgeted_too(tmp_path):
    """With a validation split of its own, the budget takes val_fraction of it from there."""
    source, _ = load_splits(local_task(tmp_path, ROWS, ROWS))
    source["validation"] = source["test"]
    limited = label_budget(source, 10, 0.2, data_seed=0)
    assert (len(limited["train"]), len(limited["validation"])) == (8, 2)


def test_template_and_verbalization_checks(tmp_path):
    cfg = compose_config(tmp_path, "task=intent_sample").task
    task = Task.from_config(cfg)
    assert task.prompt("my {braces}") == "Customer message: my {braces}\nIntent:"
    assert task.target(task.answer({"label": "card_arrival"})) == " card arrival"
    with pytest.raises(UserError, match="no \\{text\\} placeholder"):  # checked up front
        check_config(compose_config(tmp_path, "task=intent_sample", "task.template=Message:"))
    with pytest.raises(UserError, match="share the verbalization"):
        Task.from_config(OmegaConf.merge(cfg, {"labels": {"request_refund": "card arrival"}}))


def test_empty_or_unreadable_data_file(tmp_path):
    cfg = local_task(tmp_path, ROWS, ROWS)
    (tmp_path / "empty.jsonl").write_text("")
    cfg.data_files.train = str(tmp_path / "empty.jsonl")
    with pytest.raises(UserError, match=r"data file is empty: .*empty.jsonl \(task.data_files"):
        load_splits(cfg)
    (tmp_path / "bad.jsonl").write_text("{not json\n")
    cfg.data_files.train = str(tmp_path / "bad.jsonl")
    with pytest.raises(UserError, match=r"cannot read .*bad.jsonl \(task.data_files.train\) as "
                                        r"json"):
        load_splits(cfg)


def test_prepared_and_direct_jobs_draw_the_same_examples(tmp_path):
    """DVC's prepare stage writes the loaded splits; a job on them carves its budget by
    data_seed exactly as a direct job does (they used to carve with seed 0 vs seed)."""
    from prompt_vs_finetune.tasks import content_hash, job_splits
    from prompt_vs_finetune.tasks.splits import write_splits

    direct = compose_config(tmp_path, "task=intent_sample", "seed=3", "train_size=64")
    write_splits(*load_splits(direct.task), tmp_path / "prepared")
    prepared = compose_config(tmp_path, "task=intent_sample", "seed=3", "train_size=64",
                              f"data_dir={tmp_path / 'prepared'}")
    _, a, _, _ = job_splits(direct.task, direct.data_dir, direct.train_size, direct.test_size,
                            direct.data_seed)
    _, b, _, _ = job_splits(prepared.task, prepared.data_dir, prepared.train_size,
                            prepared.test_size, prepared.data_seed)
    for role in ("train", "validation", "test"):
        assert content_hash(a[role]) == content_hash(b[role])
    seed4 = compose_config(tmp_path, "task=intent_sample", "seed=4", "train_size=64")
    _, other, _, _ = job_splits(seed4.task, seed4.data_dir, seed4.train_size, seed4.test_size,
                                seed4.data_seed)
    assert content_hash(other["train"]) != content_hash(a["train"])


def test_a_data_file_rewritten_while_read_is_read_again(tmp_path, monkeypatch):
    """A file still being written when the job read it was used at 40 of its 440 rows: a file
    that changes during the read is read again; one that never holds still is refused."""
    import prompt_vs_finetune.tasks.loading as loading

    cfg = local_task(tmp_path, ROWS[:4], ROWS)  # the writer has written 4 rows of 20 so far
    real_load, writes = loading.datasets.load_dataset, []

    def load_while_writing(*args, **kwargs):
        loaded = real_load(*args, **kwargs)
        if "train" in kwargs["data_files"] and len(writes) < finish_after:
            writes.append(1)
            write_jsonl(tmp_path / "train.jsonl", ROWS[: 4 + 8 * len(writes)])
        return loaded

    monkeypatch.setattr(loading.datasets, "load_dataset", load_while_writing)
    finish_after = 2
    splits, _ = load_splits(cfg)
    assert len(splits["train"]) == 20 and len(writes) == 2
    writes.clear()
    write_jsonl(tmp_path / "train.jsonl", ROWS[:4])
    finish_after = 3
    with pytest.raises(UserError, match=r"train.jsonl \(task.data_files.train\) changed while it"
                                        r" was read, 3 times; run again once"):
        load_splits(cfg)


def test_a_split_whose_every_answer_is_empty_names_the_answer_column(tmp_path):
    """Not "check task.text_field" (the texts are there): the labels are what is missing."""
    cfg = local_task(tmp_path, ROWS, [{"text": f"t {i}", "label": ""} for i in range(3)])
    with pytest.raises(UserError, match=r"task.data_files \[test\] has no row with "
                                        r"a label \(all 3 are empty\); check the file and "
                                        r"task.label_field"):
        load_splits(cfg)


def test_every_arm_draws_the_same_class_balanced_budget_and_budgets_nest(tmp_path):
    """A study's budgets on the 14-intent sample (14, 56, 280): fine-tuning trains on the
    budget's train part and stops on its validation; few-shot shows the train part as demos
    (k = n_train) and chooses on the same validation: the same labels, every class's count
    within one of the others', and each budget inside the next."""
    from collections import Counter

    from prompt_vs_finetune.tasks import select_demos

    cfg = compose_config(tmp_path, "task=intent_sample").task
    source, _ = load_splits(cfg)
    previous = set()
    for n in (14, 56, 280):
        splits = label_budget(source, n, cfg.val_fraction, data_seed=3)
        tuned = Counter([*splits["train"]["label"], *splits["validation"]["label"]])
        shown = Counter(d["label"] for d in select_demos(splits["train"], len(splits["train"]),
                                                         "class_balanced", seed=3))
        assert set(tuned) == set(cfg.labels)  # every class once the budget reaches 14
        for counts in (tuned, shown):
            per_class = [counts[label] for label in cfg.labels]
            assert max(per_class) - min(per_class) <= 1
        prompted = shown + Counter(splits["validation"]["label"])
        assert prompted == tuned
        held = Counter(splits["validation"]["label"])  # class-balanced too
        assert max(held[label] for label in cfg.labels) - min(
            held[label] for label in cfg.labels) <= 1
        drawn = {*splits["train"]["text"], *splits["validation"]["text"]}
        assert len(drawn) == n and previous <= drawn
        previous = drawn
