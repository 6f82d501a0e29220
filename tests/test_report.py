"""Report maths on a synthetic MLflow store whose numbers the test chooses."""

import base64
import json
import math
from pathlib import Path
from types import SimpleNamespace

import mlflow
import pandas as pd
import pytest
from matplotlib.colors import to_rgba
from scipy import stats

from prompt_vs_finetune import report
from prompt_vs_finetune.report import mlflow_run, plots

from .faulty import ctrl_c_as_a_run_opens

CELLS = {  # (arm, n_labels): accuracies over seeds 0, 1, 2
    ("zero_shot", 0): [0.30, 0.30, 0.30],
    ("few_shot", 4): [0.60, 0.62, 0.64],
    ("full_finetune", 16): [0.55, 0.60, 0.65],
    ("full_finetune", 64): [0.80, 0.82, 0.84],
    ("lora", 16): [0.50, 0.52, 0.54],
    ("lora", 64): [0.78, 0.80, 0.82],
}
FIT = {"zero_shot": "false", "few_shot": "false", "full_finetune": "true", "lora": "true"}
TRAIN_USD = {"full_finetune": 1.0, "lora": 0.25, "zero_shot": 0.0, "few_shot": 0.0}
PER_1K = {"zero_shot": 0.01, "few_shot": 0.05, "full_finetune": 0.01, "lora": 0.012}


@pytest.fixture
def store(tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    mlflow.set_tracking_uri(uri)
    mlflow.set_experiment("intent_sample")
    for (arm, n), values in CELLS.items():
        for seed, value in enumerate(values):
            with mlflow.start_run(tags={"arm": arm, "fit": FIT[arm], "task": "intent_sample",
                                        "model": "tiny",
                                        "seed": str(seed)}):
                mlflow.log_metrics({
                    "test/accuracy": value, "test/perplexity": 2.0,
                    "data/n_train": n if FIT[arm] == "true" else 100,
                    "fewshot/demos_used": n if arm == "few_shot" else 0,
                    "cost/usd_per_1k_predictions": PER_1K[arm],
                    "cost/train_usd": TRAIN_USD[arm], "cost/train_seconds": 1.0,
                    "cost/trainable_params": 1000.0 if arm == "full_finetune" else 10.0})
    mlflow.start_run(tags={"arm": "lora", "fit": "true", "task": "intent_sample",
                           "model": "tiny"})
    mlflow.log_metric("test/accuracy", 0.99)
    mlflow.end_run("FAILED")  # a failed job must not count
    return uri


def test_means_and_t_intervals(store):
    runs = report.load_runs(store)
    assert len(runs) == 18  # the FAILED run is left out
    table = report.summarise(runs).set_index(["arm", "n_labels"])
    few = table.loc[("few_shot", 4)]
    assert few["quality"] == pytest.approx(0.62)
    assert few["quality_ci"] == pytest.approx(stats.t.ppf(0.975, 2) * 0.02 / math.sqrt(3))
    assert table.loc[("zero_shot", 0), "quality_ci"] == pytest.approx(0.0)
    assert table.loc[("full_finetune", 64), "runs"] == 3


def test_crossover_and_recommendation(store):
    table = report.summarise(report.load_runs(store))
    found = report.crossover(table, "full_finetune")
    assert found["n_labels"] == 64 and found["prompt"]["arm"] == "few_shot"
    assert report.crossover(table, "lora")["n_labels"] == 64
    words = " ".join(report.recommend(table, "accuracy"))
    assert "4 labels: few_shot, accuracy 0.620" in words
    assert "Fine-tune (full_finetune) once you have about 64 labelled examples" in words
    assert "With fewer labels (16) it does not clearly beat prompting" in words
    assert "At 64 labels lora reaches accuracy 0.800" in words
    assert "at 25% of full_finetune's training cost" in words


def test_pareto_front(store):
    table = report.summarise(report.load_runs(store)).set_index(["arm", "n_labels"])
    front = report.pareto_front(table.reset_index()).tolist()
    marked = {key for key, on in zip(table.index, front, strict=True) if on}
    # cheapest-and-best: full_finetune at 64 (0.82 at 0.01); nothing else is undominated
    assert marked == {("full_finetune", 64)}


def test_single_seed_is_called_thin(tmp_path):
    uri = f"sqlite:///{tmp_path / 'one.db'}"
    mlflow.set_tracking_uri(uri)
    mlflow.set_experiment("t")
    for arm in ("zero_shot", "lora"):
        with mlflow.start_run(tags={"arm": arm, "fit": FIT[arm], "task": "t", "model": "tiny",
                                    "seed": "0"}):
            mlflow.log_metrics({"test/accuracy": 0.5, "data/n_train": 10})
    table = report.summarise(report.load_runs(uri))
    assert report.recommend(table, "accuracy")[0].startswith("Evidence too thin")


def test_report_files_and_summary_run(store, tmp_path):
    out = tmp_path / "report"
    report.main(["--tracking-uri", store, "--out", str(out)])
    for name in ("report.md", "table.csv", "summary.json", "recommendation_intent_sample_tiny.txt",
                 "plots/intent_sample_tiny_quality_vs_cost.png",
                 "plots/intent_sample_tiny_data_efficiency.png",
                 "plots/intent_sample_tiny_prompt_sensitivity.png"):
        assert (out / name).stat().st_size > 0, name
    assert len((out / "table.csv").read_text().splitlines()) == 1 + len(CELLS)
    client = mlflow.tracking.MlflowClient(store)
    summary = client.search_runs([client.get_experiment_by_name("pvf-report").experiment_id])
    assert {a.path for a in client.list_artifacts(summary[0].info.run_id)} >= {"report.md"}
    assert len(report.load_runs(store)) == 18  # the summary run is not a job


def test_prompt_sensitivity_spread(tmp_path):
    """Few-shot over 2 templates x 2 demo orders: range, std, and the gap between templates."""
    uri = f"sqlite:///{tmp_path / 'ps.db'}"
    mlflow.set_tracking_uri(uri)
    mlflow.set_experiment("t")
    values = {("default", 0): 0.50, ("default", 1): 0.60, ("question", 0): 0.20,
              ("question", 1): 0.30}
    for (prompt, order), value in values.items():
        with mlflow.start_run(tags={"arm": "few_shot", "task": "t", "model": "tiny", "seed": "0",
                                    "prompt": prompt}):
            mlflow.log_param("arm.order_seed", order)
            mlflow.log_metrics({"test/accuracy": value, "fewshot/demos_used": 4})
    runs = report.load_runs(uri)
    spread = report.sensitivity(runs).iloc[0]
    assert (spread["runs"], spread["templates"], spread["orders"]) == (4, 2, 2)
    assert (spread["min"], spread["max"]) == (0.20, 0.60)
    assert spread["std"] == pytest.approx(0.1826, abs=1e-4)
    assert spread["best_template"] == "default" and spread["template_gap"] == pytest.approx(0.30)
    out = tmp_path / "out"
    report.write_report(runs, out)
    assert "| few_shot | 4 | 4 | 2 | 2 | 1 | 0.200 | 0.600 | 0.183 | default | question | 0.300 |" \
        in (out / "report.md").read_text()


# -- precision, API models, model scale ----------------------------------------------------
SCALE = {  # model: (cost/total_params or None for an API model, {arm: accuracy at seed 0})
    "claude": (None, {"zero_shot": 0.70, "few_shot": 0.85}),
    "gpt2-medium": (354.8e6, {"zero_shot": 0.35, "few_shot": 0.50, "full_finetune": 0.88,
                              "lora": 0.86}),
    "distilgpt2": (81.9e6, {"zero_shot": 0.20, "few_shot": 0.30, "full_finetune": 0.80,
                            "lora": 0.76}),
    "gpt2": (124.4e6, {"zero_shot": 0.30, "few_shot": 0.45, "full_finetune": 0.85,
                       "lora": 0.83}),
}
INT8_DROP = 0.20  # gpt2 prompting arms scored again at int8, this much lower


@pytest.fixture(scope="module")
def scale_store(tmp_path_factory):
    """Two seeds per cell; gpt2's prompting arms also at int8; claude logs no perplexity and
    no parameter count, but an unparsed rate. Inserted out of size order on purpose."""
    uri = f"sqlite:///{tmp_path_factory.mktemp('scale') / 'mlflow.db'}"
    mlflow.set_tracking_uri(uri)
    mlflow.set_experiment("intent_sample")

    def job(model, arm, seed, accuracy, dtype=None):
        params, _ = SCALE[model]
        tags = {"arm": arm, "fit": FIT[arm], "task": "intent_sample", "model": model,
                "seed": str(seed), "study": "model_scale"}
        if dtype:
            tags["inference_dtype"] = dtype
        metrics = {"test/accuracy": accuracy,
                   "data/n_train": 100 if FIT[arm] == "true" else 0,
                   "fewshot/demos_used": 8 if arm == "few_shot" else 0,
                   "cost/usd_per_1k_predictions": 0.5 if dtype == "int8" else 1.0,
                   "cost/train_usd": 0.0}
        if params is None:
            metrics["test/unparsed_rate"] = 0.05
        else:
            metrics |= {"test/perplexity": 3.0 if dtype == "int8" else 2.5,
                        "test/bits_per_byte": 1.5,
                        "cost/total_params": params,
                        "cost/trainable_params": params if arm == "full_finetune" else 0.0}
        with mlflow.start_run(tags=tags):
            mlflow.log_metrics(metrics)

    for model, (_, arms) in SCALE.items():
        for arm, accuracy in arms.items():
            for seed in (0, 1):
                # gpt2: one untagged (older) run and one tagged float32: the same cell
                dtype = "float32" if model == "gpt2" and seed == 1 else None
                job(model, arm, seed, accuracy + 0.01 * seed, dtype)
                if model == "gpt2" and FIT[arm] == "false":
                    job(model, arm, seed, accuracy - INT8_DROP + 0.01 * seed, "int8")
    return uri


@pytest.fixture(scope="module")
def scale_report(scale_store, tmp_path_factory):
    out = tmp_path_factory.mktemp("scale_report")
    runs = report.load_runs(scale_store)
    summary = report.write_report(runs, out)
    return runs, out, summary


def test_inference_dtype_is_a_dimension(scale_report):
    runs, out, _ = scale_report
    assert set(runs["dtype"]) == {"float32", "int8"}  # untagged runs read float32
    table = report.summarise(runs).set_index(["model", "dtype", "arm"])
    assert table.loc[("gpt2", "float32", "zero_shot"), "runs"] == 2
    assert table.loc[("gpt2", "int8", "zero_shot"), "quality"] == pytest.approx(0.105)
    assert table.loc[("gpt2", "float32", "zero_shot"), "quality"] == pytest.approx(0.305)
    md = (out / "report.md").read_text()
    section = md.split("## intent_sample / gpt2\n")[1].split("\n## ")[0]
    assert "| arm | dtype | N labels | runs | accuracy [95% interval] | perplexity |" in section
    assert "| zero_shot | float32 | 0 | 2 | 0.305 ± 0.064† | 2.5 |" in section
    assert "| zero_shot | int8 | 0 | 2 | 0.105 ± 0.064† | 3 |" in section
    # the precision table puts the int8 cell beside its float32 twin
    assert "| zero_shot | 0 | int8 | 0.305 ± 0.064† | 0.105 ± 0.064† | -0.200 | yes | 2.5 → 3 |" \
        in section
    assert "int8 vs float32: accuracy changes by -0.200 on average over 2 cell(s)" in section
    assert "2 of 2 clearly different at 95%; 50% of the float32 inference cost" in section
    assert "[int8] Only the prompting arms" not in section  # float32 has fitted arms
    # sections without reduced precision keep the float32-only layout
    distil = md.split("## intent_sample / distilgpt2\n")[1].split("\n## ")[0]
    assert ("| arm | N labels | runs | accuracy [95% interval] | perplexity | USD / 1k pred. |"
            in distil)


def test_api_model_perplexity_na_and_unparsed_rate(scale_report):
    _, out, _ = scale_report
    md = (out / "report.md").read_text()
    assert "nan" not in md.lower()
    section = md.split("## intent_sample / claude\n")[1].split("\n## ")[0]
    assert ("| arm | N labels | runs | accuracy [95% interval] | perplexity | unparsed replies |"
            in section)
    assert "| few_shot | 8 | 2 | 0.855 ± 0.064† | n/a | 5.0% | 1 |" in section
    assert "5.0% of its replies matched no label" in section
    assert "Only the prompting arms ran for this model" in section
    local = md.split("## intent_sample / gpt2-medium\n")[1].split("\n## ")[0]
    assert "unparsed" not in local  # no run of that model logged it
    assert (out / "plots/intent_sample_claude_quality_vs_cost.png").stat().st_size > 0


def test_summary_json_has_null_not_nan(scale_report):
    _, out, summary = scale_report

    def no_constants(name):
        raise AssertionError(f"summary.json holds {name}")

    loaded = json.loads((out / "summary.json").read_text(), parse_constant=no_constants)
    assert loaded == summary
    claude = [c for c in loaded["model_scale"]["intent_sample"]["cells"]
              if c["model"] == "claude"]
    assert {c["arm"] for c in claude} == {"zero_shot", "few_shot"}
    assert all(c["perplexity"] is None and c["total_params"] is None for c in claude)
    assert all(c["unparsed_rate"] == pytest.approx(0.05) for c in claude)
    gpt2 = loaded["tasks"]["intent_sample/gpt2"]
    assert gpt2["best"]["zero_shot"] == pytest.approx(0.305)  # float32 cells
    assert gpt2["usd_per_1k_predictions"]["zero_shot"] == 1.0  # the best float32 cell's cost
    assert gpt2["best_by_dtype"]["int8"]["zero_shot"] == pytest.approx(0.105)


def test_model_scale_ordered_by_parameters_api_last(scale_report):
    runs, out, _ = scale_report
    scale = report.model_scale(report.summarise(runs))
    order = list(dict.fromkeys(zip(scale["model"], scale["dtype"], strict=True)))
    assert order == [("distilgpt2", "float32"), ("gpt2", "float32"), ("gpt2", "int8"),
                     ("gpt2-medium", "float32"), ("claude", "float32")]
    md = (out / "report.md").read_text()
    section = md.split("## intent_sample: model scale\n")[1]
    rows = [line for line in section.splitlines() if line.startswith("| ")][1:]
    assert [row.split(" | ")[0] for row in rows] == [
        "| distilgpt2", "| gpt2", "| gpt2 (int8)", "| gpt2-medium", "| claude"]
    assert rows[0].startswith("| distilgpt2 | 81.9M | 1.5 | 0.205 ± 0.064† [1] |")
    assert rows[-1] == ("| claude | n/a | n/a | 0.705 ± 0.064† [1] | 0.855 ± 0.064† [1] | — | "
                        "— |")
    assert "Best across models: gpt2-medium (355M) full_finetune" in section
    assert (out / "plots/intent_sample_model_scale.png").stat().st_size > 0
    assert (out / "recommendation_intent_sample_model_scale.txt").is_file()


def test_float32_single_model_report_layout_unchanged(store, tmp_path):
    out = tmp_path / "out"
    report.write_report(report.load_runs(store), out)
    md = (out / "report.md").read_text()
    assert ("| arm | N labels | runs | accuracy [95% interval] | perplexity | USD / 1k pred. | "
            "train USD | trainable params | Pareto |\n|---|---|---|---|---|---|---|---|---|") in md
    assert "| few_shot | 4 | 3 | 0.620 ± 0.050† | 2 | 0.05 | 0 | 10 |  |" in md
    assert "model scale" not in md and "Precision" not in md and "dtype" not in md
    assert not (out / "plots/intent_sample_model_scale.png").exists()


# -- plots people would rather look at, and the report's MLflow run -----------------------

def capture_figures(monkeypatch) -> dict:
    """Every figure the report draws, by file name (still saved as the report saves it)."""
    figures, finish = {}, plots._finish

    def keep(fig, path, *args, **kwargs):
        figures[path.name] = fig
        finish(fig, path, *args, **kwargs)

    monkeypatch.setattr(plots, "_finish", keep)
    return figures


def labelled_colors(fig) -> dict[str, tuple]:
    """Legend label -> RGBA of each error-bar series and line in a figure."""
    ax = fig.axes[0]
    found = {c.get_label(): to_rgba(c.lines[0].get_color()) for c in ax.containers
             if c.get_label() and not c.get_label().startswith("_")}
    found |= {line.get_label(): to_rgba(line.get_color()) for line in ax.get_lines()
              if not line.get_label().startswith("_")}
    return found


def chance_lines(fig) -> list[tuple[str, float]]:
    return [(line.get_label(), float(line.get_ydata()[0])) for line in fig.axes[0].get_lines()
            if line.get_label().startswith("chance")]


def test_one_colour_per_arm_in_every_plot(store, tmp_path, monkeypatch):
    figures = capture_figures(monkeypatch)
    report.write_report(report.load_runs(store), tmp_path / "out")
    want = {arm: to_rgba(plots.ARM_COLORS[arm]) for arm in FIT}
    assert len(set(want.values())) == 4
    cost = labelled_colors(figures["intent_sample_tiny_quality_vs_cost.png"])
    assert {arm: cost[arm] for arm in FIT} == want
    labels = labelled_colors(figures["intent_sample_tiny_data_efficiency.png"])
    assert {"full_finetune": labels["full_finetune"], "lora": labels["lora"],
            "zero_shot": labels["zero_shot (k=0)"], "few_shot": labels["few_shot (k=4)"]} == want
    volume = labelled_colors(figures["intent_sample_cost_vs_volume.png"])
    assert {arm: volume[f"tiny/{arm}"] for arm in FIT} == want
    boxes = [p for p in figures["intent_sample_tiny_prompt_sensitivity.png"].axes[0].patches]
    assert [b.get_facecolor()[:3] for b in boxes] == [want["zero_shot"][:3],
                                                       want["few_shot"][:3]]


def test_arm_colours_fixed_then_sorted_fallback():
    some = plots.arm_colors(["lora", "zz_rag", "hybrid", "aa_distil"])
    fewer = plots.arm_colors(["zz_rag", "aa_distil"])
    assert some["lora"] == "tab:red" and some["hybrid"] == "tab:purple"
    assert some["aa_distil"] == fewer["aa_distil"] == plots.FALLBACK_COLORS[0]
    assert some["zz_rag"] == fewer["zz_rag"] == plots.FALLBACK_COLORS[1]
    assert not set(plots.FALLBACK_COLORS) & set(plots.ARM_COLORS.values())


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    """One study's runs in three experiments, reported once with `pvf-report`:
    intent_sample (8 classes as `data/n_classes`; lora at two budgets; the job runs of a sweep
    whose parent run carries job-like tags), summary_sample (ROUGE; one fine-tuning budget) and
    labelled (3 classes known only from `task.labels.*` params; one run per arm)."""
    root = tmp_path_factory.mktemp("study")
    uri = f"sqlite:///{root / 'mlflow.db'}"
    mlflow.set_tracking_uri(uri)
    jobs = {}

    def job(task, arm, seed, n, metrics, tags=None, params=None):
        with mlflow.start_run(tags={"arm": arm, "fit": FIT[arm], "task": task, "model": "tiny",
                                    "seed": str(seed), "study": "default", **(tags or {})}) as run:
            mlflow.log_metrics({"data/n_labels": n, "cost/usd_per_1k_predictions": PER_1K[arm],
                                "cost/train_usd": TRAIN_USD[arm], **metrics})
            if params:
                mlflow.log_params(params)
        jobs[run.info.run_id] = (task, arm, str(seed))

    mlflow.set_experiment("intent_sample")
    with mlflow.start_run(run_name="sweep", tags={"pvf.parent": "true", "arm": "lora",
                                                  "task": "intent_sample", "model": "tiny"}) as p:
        mlflow.log_metric("test/accuracy", 0.99)  # would win every table if it were counted
    child = {"mlflow.parentRunId": p.info.run_id}
    for arm, n, values in (("zero_shot", 0, (0.30, 0.30)), ("few_shot", 4, (0.50, 0.60)),
                           ("lora", 16, (0.50, 0.56)), ("lora", 64, (0.80, 0.84))):
        for seed, value in enumerate(values):
            job("intent_sample", arm, seed, n, {"test/accuracy": value, "data/n_classes": 8},
                tags=child)
    mlflow.set_experiment("summary_sample")
    for arm, n, values in (("zero_shot", 0, (0.20, 0.21)), ("full_finetune", 396, (0.30, 0.31))):
        for seed, value in enumerate(values):
            job("summary_sample", arm, seed, n, {"test/rougeL": value})
    mlflow.set_experiment("labelled")
    labels = {f"task.labels.{name}": name for name in ("yes", "no", "maybe")}
    job("labelled", "zero_shot", 0, 0, {"test/accuracy": 0.40}, params=labels)
    job("labelled", "lora", 0, 16, {"test/accuracy": 0.70}, params=labels)

    out = root / "report"
    (out / "plots").mkdir(parents=True)
    stale = out / "plots/summary_sample_tiny_data_efficiency.png"  # from an earlier report
    stale.write_bytes(b"not this study's")
    with pytest.MonkeyPatch.context() as patch:
        figures = capture_figures(patch)
        report.main(["--tracking-uri", uri, "--out", str(out)])
    client = mlflow.tracking.MlflowClient(uri)
    found = client.search_runs([client.get_experiment_by_name("pvf-report").experiment_id])
    assert len(found) == 1
    return SimpleNamespace(uri=uri, out=out, figures=figures, jobs=jobs, parent=p.info.run_id,
                           client=client, run=found[0], md=(out / "report.md").read_text())


def test_chance_line_for_classification_only(study):
    for plot in ("quality_vs_cost", "data_efficiency", "prompt_sensitivity"):
        assert chance_lines(study.figures[f"intent_sample_tiny_{plot}.png"]) == [
            ("chance (1/8 classes)", 0.125)], plot
    # no data/n_classes metric: the task.labels.* params
    assert chance_lines(study.figures["labelled_tiny_quality_vs_cost.png"]) == [
        ("chance (1/3 classes)", pytest.approx(1 / 3))]
    drawn = [f"summary_sample_tiny_{p}.png" for p in ("quality_vs_cost", "prompt_sensitivity")]
    assert all(chance_lines(study.figures[name]) == [] for name in drawn)  # ROUGE: none


def test_intervals_on_quality_points(study):
    table = report.summarise(report.load_runs(study.uri)).set_index(["task", "arm", "n_labels"])
    fig = study.figures["intent_sample_tiny_data_efficiency.png"]
    lora = next(c for c in fig.axes[0].containers if c.get_label() == "lora")
    spans = [seg[1, 1] - seg[0, 1] for seg in lora.lines[2][0].get_segments()]
    want = [table.loc[("intent_sample", "lora", n), "quality_high"]
            - table.loc[("intent_sample", "lora", n), "quality_low"] for n in (16, 64)]
    assert spans == pytest.approx(want) and min(spans) > 0
    # one run, no per-example values: no interval, so no bar
    fig = study.figures["labelled_tiny_quality_vs_cost.png"]
    zero = next(c for c in fig.axes[0].containers if c.get_label() == "zero_shot")
    assert [len(s) for s in zero.lines[2][0].get_segments()] == [0]


def test_degenerate_plots_are_a_note_not_an_image(study):
    plots_dir = study.out / "plots"
    assert ("*Not drawn:* data efficiency: one label budget per fine-tuned arm (full_finetune "
            "n=396); run train_size=16,64,256 to draw it." in study.md)
    assert "summary_sample_tiny_data_efficiency.png" not in study.md
    assert not (plots_dir / "summary_sample_tiny_data_efficiency.png").exists()  # stale: gone
    assert ("*Not drawn:* prompt sensitivity: one run per prompting arm and k (zero_shot k=0); "
            in study.md)
    assert "*Not drawn:* data efficiency: one label budget per fine-tuned arm (lora n=16)" \
        in study.md
    assert not (plots_dir / "labelled_tiny_prompt_sensitivity.png").exists()
    # what could be drawn was
    linked = sorted(name for name in study.figures if f"(plots/{name})" in study.md)
    assert linked == sorted(study.figures) == sorted(p.name for p in plots_dir.glob("*.png"))
    assert "intent_sample_tiny_data_efficiency.png" in linked


def test_report_html_embeds_every_plot(study):
    page = (study.out / "report.html").read_text()
    uris = page.split('src="data:image/png;base64,')[1:]
    assert len(uris) == study.md.count("](plots/") == len(study.figures) > 0
    assert all(base64_png(uri.split('"')[0]) for uri in uris)
    assert 'src="plots/' not in page
    assert page.count("<table>") == study.md.count("\n|---") > 0
    assert "<h2>intent_sample / tiny</h2>" in page
    assert "<em>Not drawn:</em> data efficiency" in page


def base64_png(text: str) -> bool:
    return base64.b64decode(text).startswith(b"\x89PNG\r\n\x1a\n")


def test_report_run_names_and_links_its_job_runs(study):
    run = study.run
    assert run.info.run_name == "report: default study · intent_sample, labelled, summary_sample " \
        "· 14 runs"
    tags = run.data.tags
    assert tags["pvf_summary"] == "true" and tags["study"] == "default"
    ids = tags["pvf.job_runs"].split(",")
    assert len(ids) == len(set(ids)) == 14 and set(ids) == set(study.jobs)
    assert study.parent not in ids
    rows = study.client.download_artifacts(run.info.run_id, "job_runs.csv")
    jobs = pd.read_csv(rows, dtype=str)
    assert list(jobs.columns[:8]) == ["run_id", "experiment_id", "task", "arm", "model", "seed",
                                      "cell", "link"]
    assert list(jobs["run_id"]) == ids
    assert {r.run_id: (r.task, r.arm, r.seed) for r in jobs.itertuples()} == study.jobs
    experiments = {r.run_id: study.client.get_run(r.run_id).info.experiment_id
                   for r in jobs.itertuples()}
    assert all(r.link == f"#/experiments/{experiments[r.run_id]}/runs/{r.run_id}"
               "?workflowType=machine_learning" for r in jobs.itertuples())
    note = tags["mlflow.note.content"]
    assert "- **intent_sample**: lora (tiny), accuracy 0.820" in note
    assert "- **summary_sample**: full_finetune (tiny), rougeL 0.305" in note
    assert all(f"]({link})" in note for link in jobs["link"])
    metrics = run.data.metrics
    assert metrics["best/intent_sample/tiny/lora/accuracy"] == pytest.approx(0.82)
    assert metrics["best/summary_sample/tiny/zero_shot/rougeL"] == pytest.approx(0.205)
    assert metrics["runs"] == 14
    artifacts = {a.path for a in study.client.list_artifacts(run.info.run_id)}
    assert artifacts >= {"report.md", "report.html", "table.csv", "summary.json", "plots",
                         "job_runs.csv"}


def test_parent_run_gets_the_summary_and_is_no_job(study):
    parent = study.client.get_run(study.parent)
    assert parent.data.tags["pvf.report_run"] == study.run.info.run_id
    # its own jobs' task only: the numbers of the other experiments' tasks are not its own
    own = {k: v for k, v in study.run.data.metrics.items() if k.startswith("best/intent_sample/")}
    assert len(own) == 3 and {k: parent.data.metrics[k] for k in own} == own
    assert parent.data.metrics["best/intent_sample/tiny/lora/accuracy"] == pytest.approx(0.82)
    assert not any("summary_sample" in k or "labelled" in k for k in parent.data.metrics)
    assert parent.data.metrics["runs"] == 8  # of its jobs, the report read all
    crossing = "break_even/intent_sample/tiny/lora/vs/tiny/few_shot"  # 0.25 / (5e-5 - 1.2e-5)
    assert parent.data.metrics[crossing] == study.run.data.metrics[crossing] == \
        pytest.approx(0.25 / (0.05e-3 - 0.012e-3))
    runs = report.load_runs(study.uri)
    assert study.parent not in set(runs["run_id"]) and len(runs) == 14
    assert (f"[sweep](#/experiments/{parent.info.experiment_id}/runs/{study.parent}"
            "?workflowType=machine_learning)") in \
        study.run.data.tags["mlflow.note.content"]


def test_job_runs_tag_truncated_with_a_count():
    ids = [f"{i:032x}" for i in range(400)]  # 400 x 33 characters
    text = mlflow_run.ids_tag(ids)
    kept = text.split(",...")[0].split(",")
    assert len(text) <= mlflow_run.MAX_IDS_TAG and kept == ids[:len(kept)]
    assert text.endswith(f"(+{400 - len(kept)} more: job_runs.csv)")
    assert mlflow_run.ids_tag(ids[:3]) == ",".join(ids[:3])


def test_agreement_is_the_share_answered_alike_by_every_run():
    from prompt_vs_finetune.report.cells import agreement

    assert agreement([[0, 1, 2, 3], [0, 1, 2, 0], [0, 2, 2, 3]]) == pytest.approx(2 / 4)
    assert agreement([["a b", "c"], ["a b", "c"]]) == 1.0  # summaries: the same text
    assert math.isnan(agreement([[0, 1]]))  # one run: nothing to agree with
    assert math.isnan(agreement([[0, 1], None]))  # a run without predictions


def test_a_report_shows_agreement_consistency_and_calibrated_spread(tmp_path):
    """Two seeds of few-shot answering 3 of 4 examples alike, with calibrated accuracies; the
    report's table, its consistency plot and its prompt-sensitivity table show them."""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    mlflow.set_tracking_uri(uri)
    mlflow.set_experiment("intent_sample")
    answers = {0: [0, 1, 2, 3], 1: [0, 1, 2, 0]}
    for seed, (prompt, predicted) in enumerate(zip(["default", "question"], answers.values(),
                                                   strict=True)):
        with mlflow.start_run(tags={"arm": "few_shot", "fit": "false", "task": "intent_sample",
                                    "model": "tiny", "seed": str(seed), "cell": "c",
                                    "prompt": prompt}):
            mlflow.log_param("data.test_sha256", "t")
            mlflow.log_metrics({"test/accuracy": 0.5, "fewshot/demos_used": 4,
                                "data/n_labels": 4, "test/ece": 0.125,
                                "test/accuracy_contextual": 0.6 + 0.1 * seed,
                                "test/accuracy_pmi": 0.4,
                                "cost/usd_per_1k_predictions": 0.01})
            mlflow.log_dict({"metric": "accuracy", "test_sha256": "t",
                             "values": [1, 0, 1, 0], "predictions": predicted},
                            "per_example.json")
    out = tmp_path / "reports"
    report.write_report(report.load_runs(uri), out)
    text = (out / "report.md").read_text()
    assert "agreement across seeds" in text and "| 75% |" in text and "| 0.125 |" in text
    assert (out / "plots/intent_sample_tiny_consistency.png").is_file()
    assert "| few_shot | 4 | 2 | 0.500 | 0.000 | 0.650 | 0.071 | 0.400 | 0.000 | 75% |" in text


def test_a_variant_names_what_sets_cells_apart_not_what_their_runs_disagree_on():
    """Two zero-shot cells that differ in calibration, whose runs each wrote to their own
    output folder (a per-seed checkpoint path among the params): the variant is the
    calibration alone."""
    from prompt_vs_finetune.report.cells import variants

    def params(cal, seed):
        return {"scorer.calibration": cal, "seed": seed,
                "callbacks.model_checkpoint.dirpath": f"outputs/{cal}/seed{seed}/checkpoints"}

    runs = pd.DataFrame([{"cell": cal, "params": params(cal, seed)}
                         for cal in ("none", "pmi") for seed in (0, 1)])
    table = pd.DataFrame([{"cell": cal, "task": "t", "model": "m", "dtype": "float32",
                           "arm": "zero_shot", "fit": False, "n_labels": 0, "test_set": "abc"}
                          for cal in ("none", "pmi")])
    assert list(variants(table, runs)) == ["scorer.calibration=none", "scorer.calibration=pmi"]


def test_a_report_stopped_halfway_leaves_the_previous_one_whole(store, tmp_path, monkeypatch):
    """Ctrl-C as the plots are drawn (table.csv already written): the old report stays as it
    was, file for file, and no half-written folder is left beside it."""
    out = tmp_path / "report"
    report.main(["--tracking-uri", store, "--out", str(out), "--no-mlflow"])
    before = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    (out / "table.csv").write_text("the old table\n")
    before[Path("table.csv")] = b"the old table\n"

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(plots, "plot_consistency", interrupted)
    with pytest.raises(KeyboardInterrupt):
        report.main(["--tracking-uri", store, "--out", str(out), "--no-mlflow"])
    after = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    assert after == before
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".report")] == []


CTRL_C_AS_THE_RUN_OPENS = ctrl_c_as_a_run_opens("""
from prompt_vs_finetune.report import main
main(["--tracking-uri", sys.argv[1], "--out", sys.argv[2]])
""")


def test_ctrl_c_as_the_report_run_opens_leaves_no_run_running(store, tmp_path):
    """The Ctrl-C arrives while MLflow creates the report's run: it is held until the block
    that ends the run, so the run ends KILLED and the command stops as Ctrl-C stops it. (In a
    process of its own: a signal reaches the main thread only.)"""
    import subprocess
    import sys

    from mlflow.tracking import MlflowClient

    done = subprocess.run([sys.executable, "-c", CTRL_C_AS_THE_RUN_OPENS, store,
                           str(tmp_path / "out")], capture_output=True, text=True, timeout=300)
    assert done.returncode == 130, done.stderr[-2000:]
    client = MlflowClient(store)
    statuses = {r.info.status for r in client.search_runs(
        [e.experiment_id for e in client.search_experiments()],
        filter_string="tags.pvf_summary = 'true'")}
    assert statuses == {"KILLED"}
