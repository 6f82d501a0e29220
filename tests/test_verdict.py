"""The verdict on synthetic stores whose right answer is known: cells are experiments, intervals
include the test set's noise, comparisons are paired, a crossover must hold, search trials stay
out, and break-even is training cost over the per-call saving."""

import math

import mlflow
import numpy as np
import pytest

from prompt_vs_finetune import report
from prompt_vs_finetune.report.cells import arm_costs, at_volume, bootstrap, break_even, chosen

N_TEST = 200
FIT = {"zero_shot": "false", "few_shot": "false", "full_finetune": "true", "lora": "true"}


class Store:
    """An MLflow store of job-like runs: tags, metrics and per_example.json as a job logs."""

    def __init__(self, tmp_path):
        self.uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
        mlflow.set_tracking_uri(self.uri)
        mlflow.set_experiment("t")

    def run(self, arm, values, seed=0, n_labels=0, cell=None, test_set="T", per_1k=1.0,
            train_usd=0.0, tags=None, params=None, val=None, n_val=0, metrics=None):
        values = np.asarray(values, dtype=float)
        chose = {} if val is None else {"val/accuracy": val, "data/n_validation": n_val}
        with mlflow.start_run(tags={"arm": arm, "fit": FIT[arm], "task": "t", "model": "m",
                                    "seed": str(seed), "cell": cell or f"{arm}-{n_labels}",
                                    **(tags or {})}):
            mlflow.log_params({"data.test_sha256": test_set, **(params or {})})
            mlflow.log_metrics({"test/accuracy": values.mean(), "data/n_labels": n_labels,
                                "cost/usd_per_1k_predictions": per_1k,
                                "cost/train_usd": train_usd, "cost/trainable_params": 0,
                                **chose, **(metrics or {})})
            mlflow.log_dict({"metric": "accuracy", "test_sha256": test_set,
                             "values": values.tolist()}, "per_example.json")

    def table(self):
        return report.summarise(report.load_runs(self.uri))


def right(share, n=N_TEST, offset=0):
    """1 for the first `share` of n examples (rotated by `offset`), else 0."""
    values = np.zeros(n)
    values[: round(share * n)] = 1
    return np.roll(values, offset)


def test_zero_shot_is_never_plus_or_minus_zero(tmp_path):
    """Three identical deterministic zero-shot runs: no seed variance, but 200 test examples
    at accuracy 0.3 carry a sampling error of about +-6 points."""
    store = Store(tmp_path)
    for seed in range(3):
        store.run("zero_shot", right(0.3), seed=seed)
    cell = store.table().iloc[0]
    assert cell["runs"] == 3 and cell["interval"] == "bootstrap"
    assert cell["quality"] == pytest.approx(0.3)
    half = (cell["quality_high"] - cell["quality_low"]) / 2
    assert half == pytest.approx(1.96 * math.sqrt(0.3 * 0.7 / N_TEST), rel=0.2)


def test_two_templates_are_two_cells_named_by_what_differs(tmp_path):
    store = Store(tmp_path)
    for prompt, share in (("default", 0.2), ("question", 0.6)):
        for seed in range(2):
            store.run("zero_shot", right(share), seed=seed, cell=f"zs-{prompt}",
                      params={"task.prompt": prompt, "seed": str(seed)})
    table = store.table().sort_values("quality")
    assert len(table) == 2 and list(table["runs"]) == [2, 2]
    assert list(table["variant"]) == ["task.prompt=default", "task.prompt=question"]
    md_dir = tmp_path / "out"
    report.write_report(report.load_runs(store.uri), md_dir)
    assert "| zero_shot | task.prompt=question | 0 | 2 |" in (md_dir / "report.md").read_text()


def test_identical_reruns_and_search_trials_are_not_pooled_into_a_cell(tmp_path):
    store = Store(tmp_path)
    store.run("lora", right(0.8), n_labels=64)
    store.run("lora", right(0.99), n_labels=64, tags={"hpo_trial": "true"}, train_usd=5.0)
    store.run("lora", right(0.5), n_labels=64, cell="lora-other-lr",
              params={"arm.lr": "0.1"})
    table = store.table()
    assert sorted(table["quality"].round(3)) == [0.5, 0.8]  # the trial is not a cell
    costs = arm_costs(table, search_usd={("m", "lora"): 5.0})
    assert costs.loc[0, "up_front"] == pytest.approx(5.0)  # but its cost is counted


def test_an_identical_rerun_counts_once_and_the_report_says_so(tmp_path):
    """The same seed-0 job run twice (same config hash, code and data: e.g. once through
    --config-dir, once through hydra.searchpath) was a cell of "runs 2" agreeing 100%; the
    later run replaces the earlier. Another seed, or other code, is another run."""
    store = Store(tmp_path)
    same = {"config_hash": "c0", "pvf.code": "k1"}
    store.run("zero_shot", right(0.3), tags=same)
    store.run("zero_shot", right(0.35), tags=same)  # the rerun: the one kept
    store.run("zero_shot", right(0.4), seed=1, tags={"config_hash": "c1", "pvf.code": "k1"})
    store.run("zero_shot", right(0.45), seed=2, tags={"config_hash": "c2", "pvf.code": "k1"})
    store.run("zero_shot", right(0.5), seed=2, tags={"config_hash": "c2", "pvf.code": "k2"})
    runs = report.load_runs(store.uri)
    kept, replaced = report.latest_of_identical(runs)
    assert replaced == 1 and len(kept) == 4
    assert sorted(kept["quality"].round(3)) == [0.35, 0.4, 0.45, 0.5]
    summary = report.write_report(runs, tmp_path / "out")
    assert summary["runs"] == 4 and summary["identical_reruns_replaced"] == 1
    assert "1 identical rerun(s) (same config, seed, data and code as a later run) left out" in \
        (tmp_path / "out" / "report.md").read_text()


def test_a_paired_comparison_sees_what_overlapping_intervals_hide(tmp_path):
    """B is right on every example A is right on, plus 10 more: the intervals overlap, but the
    paired difference (+0.05) excludes zero."""
    a, b = right(0.5), right(0.55)
    diff, low, high = bootstrap(a[None], b[None])
    assert diff == pytest.approx(-0.05) and high < 0
    store = Store(tmp_path)
    store.run("zero_shot", a)
    store.run("full_finetune", b, n_labels=16)
    table = store.table().set_index("arm")
    assert table.loc["zero_shot", "quality_high"] > table.loc["full_finetune", "quality_low"]
    found = report.crossover(table.reset_index(), "full_finetune")
    assert found["n_labels"] == 16 and found["result"]["paired"]


def test_a_crossover_that_does_not_hold_at_a_larger_budget_is_not_claimed(tmp_path):
    store = Store(tmp_path)
    store.run("few_shot", right(0.5), n_labels=4)
    store.run("lora", right(0.9), n_labels=16)  # wins at 16 ...
    store.run("lora", right(0.45), n_labels=64)  # ... but not at 64
    store.run("lora", right(0.95), n_labels=256)
    table = store.table()
    found = report.crossover(table, "lora")
    assert found["n_labels"] == 256  # the first budget from which it always wins
    words = " ".join(report.recommend(table, "accuracy"))
    assert "about 256 labelled examples" in words and "about 16" not in words
    assert "With fewer labels (16, 64)" in words


def test_one_budget_claims_only_what_was_tested(tmp_path):
    store = Store(tmp_path)
    store.run("zero_shot", right(0.2))
    store.run("full_finetune", right(0.9), n_labels=396)
    words = " ".join(report.recommend(store.table(), "accuracy"))
    assert "at 396 labels (the only budget tested) beats prompting (zero_shot, at 0" in words
    assert "fewer labels were not tested" in words and "about 396" not in words


def test_break_even_is_training_cost_over_the_per_call_saving(tmp_path):
    """Few-shot: $2 per 1k calls; LoRA: $0.5 per 1k calls after $3 of training ->
    3 / (0.002 - 0.0005) = 2,000 predictions. Full fine-tuning's calls cost more: never."""
    store = Store(tmp_path)
    store.run("few_shot", right(0.5), n_labels=8, per_1k=2.0)
    store.run("lora", right(0.8), n_labels=64, per_1k=0.5, train_usd=3.0)
    store.run("full_finetune", right(0.9), n_labels=64, per_1k=2.5, train_usd=1.0)
    costs = arm_costs(store.table())
    crossings = break_even(costs).set_index("fine_tuned")
    assert crossings.loc["m/lora", "break_even_predictions"] == pytest.approx(2000)
    assert crossings.loc["m/full_finetune", "break_even_predictions"] == math.inf
    ranked = at_volume(costs, 10_000)
    assert list(ranked["arm"]) == ["lora", "few_shot", "full_finetune"]  # 8, 20, 26 USD
    assert ranked.loc[0, "total_usd"] == pytest.approx(3.0 + 10_000 * 0.0005)
    out = tmp_path / "out"
    report.main(["--tracking-uri", store.uri, "--out", str(out), "--volume", "10000",
                 "--no-mlflow"])
    md = (out / "report.md").read_text()
    assert "| m/lora | m/few_shot | 0.800 vs 0.500 | 3 | 0.0005 | 0.002 | 2,000 predictions |" in md
    assert "**At 10,000 predictions**" in md
    assert (out / "plots/t_cost_vs_volume.png").stat().st_size > 0


def test_a_price_per_label_moves_the_break_even_by_its_labels_over_the_saving(tmp_path):
    """Few-shot at 8 labels: $2 per 1k calls, $1 with a prefix cache; LoRA at 64 labels: $0.5
    per 1k calls either way after $3 of training. At $0.05 a label LoRA pays 64 x 0.05 = $3.20
    for its labels and few-shot 8 x 0.05 = $0.40, so the break-even moves by
    (3.20 - 0.40) / (0.002 - 0.0005) = 1,866.7 predictions (2,000 -> 3,866.7); with a prefix
    cache by 2.80 / (0.001 - 0.0005) = 5,600 (6,000 -> 11,600)."""
    def report_of(price: float):
        store = Store(tmp_path / f"at{price}")
        for arm, n, per_1k, cached, train_usd in (("few_shot", 8, 2.0, 1.0, 0.0),
                                                  ("lora", 64, 0.5, 0.5, 3.0)):
            store.run(arm, right(0.5 if arm == "few_shot" else 0.8), n_labels=n, per_1k=per_1k,
                      train_usd=train_usd, metrics={"cost/usd_per_1k_predictions_cached": cached,
                                                    "cost/labels_usd": n * price})
        out = tmp_path / f"out{price}"
        report.main(["--tracking-uri", store.uri, "--out", str(out), "--volume", "10000",
                     "--no-mlflow"])
        (row,) = break_even(arm_costs(store.table())).to_dict("records")
        return row, (out / "report.md").read_text()

    free, _ = report_of(0.0)
    paid, md = report_of(0.05)
    assert free["break_even_predictions"] == pytest.approx(2000)
    assert free["break_even_predictions_cached"] == pytest.approx(6000)
    assert paid["break_even_predictions"] - free["break_even_predictions"] == pytest.approx(
        (64 - 8) * 0.05 / (0.002 - 0.0005))
    assert paid["break_even_predictions_cached"] - free["break_even_predictions_cached"] == \
        pytest.approx((64 - 8) * 0.05 / (0.001 - 0.0005))
    assert paid["up_front_usd"] == pytest.approx(3.0 + 3.2)
    assert paid["up_front_usd_prompting"] == pytest.approx(0.4)
    # both ways side by side: in the break-even table, the cells table and at --volume
    assert ("| m/lora | m/few_shot | 0.800 vs 0.500 | 6.2 | 0.0005 | 0.002 | 3,867 predictions | "
            "0.4 | 6.2 / 0.4 | 0.0005 / 0.001 | 11,600 predictions |") in md
    assert "| USD / 1k pred. | USD / 1k pred., prefix cache |" in md
    assert "| 2 | 1 |" in md  # few-shot's calls: $2 per 1k, $1 with the cache
    assert "prefix cache: total USD | prefix cache: up-front / per call USD |" in md
    assert "| m/lora | 11.2 | 6.2 | 0.0005 | 0.800 | 11.2 | 6.2 / 0.0005 |" in md


def test_random_weights_and_ties_are_said_in_words(tmp_path):
    """model=tiny's prompting arms are at chance by construction: the report says so and
    words every prompting statement accordingly; prompting is reported at each label budget,
    never as a "best" over the test set."""
    store = Store(tmp_path)
    random = {"pretrained": "false"}
    store.run("zero_shot", right(0.133), tags=random)
    store.run("few_shot", right(0.133), n_labels=4, tags=random)
    store.run("lora", right(0.9), n_labels=64, tags=random)
    words = report.recommend(store.table(), "accuracy")
    assert words[0].startswith("This model has random weights (model.tiny): its prompting arms "
                               "are at chance by construction")
    assert ("0 labels: zero_shot, accuracy 0.135 [0.090, 0.185] (1 run); 4 labels: few_shot, "
            "accuracy 0.135 [0.090, 0.185] (1 run) (at chance by construction: random "
            "weights).") in " ".join(words)
    assert any("(The prompts compared are at chance by construction" in w for w in words)
    md = tmp_path / "out"
    report.write_report(report.load_runs(store.uri), md)
    text = (md / "report.md").read_text()
    assert "| lora | few_shot | accuracy, fine-tuned vs prompting" not in text  # the header
    assert "| accuracy, fine-tuned vs prompting |" in text and "| 0.900 vs 0.135 |" in text


def test_the_verdict_follows_validation_and_ignores_the_test_scores_of_the_rest(tmp_path):
    """At 28 labels two prompting configurations: contextual wins on validation, PMI on test.
    The verdict compares LoRA with the contextual one, and does not move when the PMI cell's
    test score changes (the runs of the cell not chosen are only in the tables)."""
    def verdict(pmi_on_test):
        store = Store(tmp_path / str(pmi_on_test))
        for seed in range(3):
            store.run("few_shot", right(0.6, offset=seed), seed=seed, n_labels=28,
                      cell="contextual", params={"scorer.calibration": "contextual"}, val=0.7,
                      n_val=3)
            store.run("few_shot", right(pmi_on_test, offset=seed), seed=seed, n_labels=28,
                      cell="pmi", params={"scorer.calibration": "pmi"}, val=0.4, n_val=3)
            store.run("lora", right(0.7, offset=seed), seed=seed, n_labels=28, val=0.6, n_val=3)
        table = store.table()
        return report.crossover(table, "lora"), report.recommend(table, "accuracy")

    found, words = verdict(0.9)
    assert found["n_labels"] == 28 and found["prompt"]["cell"].startswith("contextual")
    assert "28 labels: few_shot (scorer.calibration=contextual; chosen on validation from 2 " \
           "configurations), accuracy 0.600" in " ".join(words)
    moved, moved_words = verdict(0.3)
    assert moved["prompt"]["cell"] == found["prompt"]["cell"] and moved_words == words


def test_three_scattered_seeds_widen_the_interval_beyond_their_range(tmp_path):
    """Seeds at 0.55 / 0.75 / 0.79 on one test set: a bootstrap that resamples them spans
    about their range; the seeds' t-interval (2 degrees of freedom) is far wider."""
    store = Store(tmp_path)
    for seed, share in enumerate((0.55, 0.75, 0.79)):
        store.run("few_shot", right(share), seed=seed, n_labels=4)
    cell = store.table().iloc[0]
    assert cell["quality"] == pytest.approx(0.6967, abs=1e-3)
    assert cell["quality_low"] < 0.55 - 0.1 and cell["quality_high"] > 0.79 + 0.1
    seeds = np.array([0.55, 0.75, 0.79])
    half = 4.303 * seeds.std(ddof=1) / math.sqrt(3)  # t(0.975, 2)
    assert cell["quality_low"] == pytest.approx(max(0.0, seeds.mean() - half), abs=0.02)


def test_a_learning_rate_search_is_counted_in_labels_and_up_front_cost(tmp_path):
    """LoRA at 28 labels with three learning rates: the one best on validation (not on test)
    is the arm's, at 28 labels (validation is inside the budget), and its up-front cost is
    the three fits' training and validation scoring."""
    store = Store(tmp_path)
    for lr, val, test in (("1e-4", 0.5, 0.9), ("3e-4", 0.8, 0.7), ("1e-3", 0.6, 0.8)):
        store.run("lora", right(test), n_labels=28, cell=f"lora-{lr}", params={"arm.lr": lr},
                  val=val, n_val=3, train_usd=2.0, per_1k=1.0)
    store.run("few_shot", right(0.5), n_labels=4, per_1k=2.0)
    table = store.table()
    costs = arm_costs(table).set_index("arm")
    assert costs.loc["lora", "quality"] == pytest.approx(0.7)  # lr=3e-4, chosen on validation
    assert costs.loc["lora", "n_labels"] == 28
    assert costs.loc["lora", "up_front"] == pytest.approx(3 * (2.0 + 3 * 1.0 / 1000))
    assert report.crossover(table, "lora")["fitted"]["val_quality"] == pytest.approx(0.8)


def test_configurations_tied_on_validation_are_a_blind_pick(tmp_path):
    """Four zero-shot configurations at 56 labels score alike on 6 validation examples (as
    SmolLM2's did): none of them is the choice; their pooled mean is, with its wide interval."""
    store = Store(tmp_path)
    for name, val, test in (("a", 0.33, 0.26), ("b", 0.33, 0.65), ("c", 0.0, 0.22)):
        store.run("zero_shot", right(test), n_labels=56, cell=name, val=val, n_val=6,
                  params={"scorer.calibration": name})
    (row,) = chosen(store.table()).to_dict("records")
    assert row["quality"] == pytest.approx((0.26 + 0.65) / 2)
    assert row["chosen_by"] == "chosen on validation from 3 configurations, the mean of 2 tied"


def test_configurations_are_compared_on_the_seeds_they_all_ran(tmp_path):
    """Tuned at seed 0, the choice carried to seeds 1-4: A beats B on seed 0's validation
    (0.8 vs 0.7), B beats A's five-seed mean (0.56). A is chosen, compared where both ran, and
    its quality is its five seeds' test mean."""
    store = Store(tmp_path)
    for seed in range(5):
        store.run("few_shot", right(0.6, offset=seed), seed=seed, n_labels=28, cell="a",
                  params={"arm.k": "4"}, val=0.8 if seed == 0 else 0.5, n_val=3)
    store.run("few_shot", right(0.9), seed=0, n_labels=28, cell="b", params={"arm.k": "14"},
              val=0.7, n_val=3)
    (row,) = chosen(store.table()).to_dict("records")
    assert row["cell"].startswith("a/") and row["runs"] == 5
    assert row["quality"] == pytest.approx(0.6)
    assert row["chosen_by"] == "chosen on validation from 2 configurations"
