"""`pvf-report --runs-from`: a study's results files rebuild its report without the MLflow store
(a fresh clone: results/ committed, mlflow.db not)."""

import json

import pandas as pd

from prompt_vs_finetune import job, report
from prompt_vs_finetune.report.mlflow_run import recorded_runs

from .conftest import compose_config

JOBS = [  # (task, arm, seed, overrides): prompting (over two seeds), a fit that chooses, ROUGE
    ("intent_sample", "zero_shot", 0, ()),
    *[("intent_sample", "few_shot", seed, ()) for seed in (0, 1)],
    ("intent_sample", "full_finetune", 0, ("train_size=32", "model.max_epochs=1")),
    ("summary_sample", "zero_shot", 0, ("test_size=4",)),
]


def test_report_from_results_files_equals_report_from_store(tmp_path):
    results = tmp_path / "results"
    for task, arm, seed, extra in JOBS:
        job.run(compose_config(tmp_path, f"task={task}", f"arm={arm}", f"seed={seed}",
                               "model=tiny", "model.tiny.n_layer=1", "test_size=8", *extra,
                               f"results_file={results}/{task}/{arm}/seed{seed}/metrics.json"))
    store = f"sqlite:///{tmp_path / 'mlflow.db'}"
    report.main(["--tracking-uri", store, "--out", str(tmp_path / "from_store"), "--no-mlflow"])
    saved = [json.loads(path.read_text()) for path in results.rglob("metrics.json")]
    assert len(saved) == len(JOBS)
    pd.testing.assert_frame_equal(recorded_runs(saved), report.load_runs(store))

    (tmp_path / "mlflow.db").rename(tmp_path / "elsewhere.db")  # a fresh clone: no store
    gone = tmp_path / "no_store"
    report.main(["--tracking-uri", f"sqlite:///{gone / 'mlflow.db'}", "--runs-from", str(results),
                 "--out", str(tmp_path / "from_files"), "--no-mlflow"])
    assert not gone.exists()  # the store was never opened
    files = {path.relative_to(tmp_path / "from_store"): path.read_bytes()
             for path in (tmp_path / "from_store").rglob("*") if path.is_file()}
    assert {path.relative_to(tmp_path / "from_files"): path.read_bytes()
            for path in (tmp_path / "from_files").rglob("*") if path.is_file()} == files
    assert len(files) > 5 and any(path.suffix == ".png" for path in files)

    # a results file of an older pvf (no record): the runs come from the store, by run id
    (tmp_path / "elsewhere.db").rename(tmp_path / "mlflow.db")
    older = results / "intent_sample/zero_shot/seed0/metrics.json"
    record = json.loads(older.read_text())
    older.write_text(json.dumps({key: record[key] for key in record
                                 if key not in ("run", "per_example")}))
    report.main(["--tracking-uri", store, "--runs-from", str(results),
                 "--out", str(tmp_path / "older"), "--no-mlflow"])
    assert {path.relative_to(tmp_path / "older"): path.read_bytes()
            for path in (tmp_path / "older").rglob("*") if path.is_file()} == files
