"""The hybrid arm (issue 16): a prompted teacher labels the train pool without its labels, the
confident labels are kept, a student is fine-tuned on them."""

import pytest
from mlflow.tracking import MlflowClient

from prompt_vs_finetune import job
from prompt_vs_finetune.backends import hybrid
from prompt_vs_finetune.errors import UserError
from prompt_vs_finetune.tasks import job_splits

from .chat_stub import StubAPI
from .conftest import compose_config

FAST = ("task=intent_sample", "model=tiny", "model.tiny.n_layer=1", "model.max_epochs=1",
        "test_size=8", "train_size=64")


def test_kept_is_the_confident_share_with_ties_kept_together():
    assert hybrid.kept([0.9, 0.1, 0.5, 0.7], 0.5) == [True, False, False, True]
    assert hybrid.kept([1.0, 1.0, 1.0, 0.0], 0.5) == [True, True, True, False]  # a tie
    assert hybrid.kept([0.0, 0.0], 1.0) == [False, False]  # no usable output, never kept


def test_several_prompts_vote_and_agreement_is_the_confidence():
    from prompt_vs_finetune.tasks import Task

    task = Task("t", "classification", "{text}", " {answer}", "\n", ("accuracy",),
                {"a": "a", "b": "b"})
    runs = [{"outputs": ["a", "b", None]}, {"outputs": ["a", "a", None]},
            {"outputs": ["a", "b", "b"]}]
    outputs, confidence = task.kind.vote(runs)
    assert outputs == ["a", "b", "b"] and confidence == pytest.approx([1, 2 / 3, 1 / 3])


def test_a_local_teacher_labels_the_pool_and_the_student_trains_on_its_kept_labels(tmp_path):
    """The offline smoke test: the job's own model, few-shot, as the teacher."""
    cfg = compose_config(tmp_path, *FAST, "arm=hybrid", "arm.teacher.k=4", "arm.keep=0.5")
    assert cfg.arm.lr == cfg.model.finetune_lr and cfg.arm.weight_decay == 0.01  # as full
    results = job.run(cfg)
    # 64 labels: 56 train + 8 validation; the 4 demos are shown, not labelled by the teacher
    assert results["hybrid/pool"] == 60 and results["data/n_labels"] == 4
    assert results["fewshot/demos_used"] == 0  # the teacher's demos: the student prompts none
    assert 30 <= results["hybrid/kept"] <= 60  # half, ties at the cut kept
    assert results["data/n_train"] + results["data/n_validation"] == results["hybrid/kept"] + 4
    assert 0 <= results["hybrid/pseudo_label_accuracy"] <= 1
    assert results["cost/teacher_usd"] > 0 and results["cost/teacher_tokens"] > 0
    assert results["cost/usd"] == pytest.approx(results["cost/train_usd"]
                                                + results["cost/teacher_usd"]
                                                + results["cost/usd_per_1k_predictions"] * 8
                                                / 1000, rel=1e-3)  # each to 4 digits
    lora = compose_config(tmp_path, *FAST, "arm=hybrid", "arm.student=lora")
    assert lora.arm.lora.alpha == 16 and lora.arm.lr == lora.model.lora_lr  # as arm=lora


def stub_teacher(cfg):
    """A stub API teacher right on even-numbered texts of the pool (in its text order) and
    wrong on odd ones: its pseudo-label accuracy is known."""
    task, splits, _, _ = job_splits(cfg.task, cfg.data_dir, cfg.train_size,
                                  cfg.test_size, cfg.data_seed)
    gold = {task.prompt(r["text"]): r["label"] for role in ("train", "validation")
            for r in splits[role]}
    names = task.label_names
    order = {prompt: i for i, prompt in enumerate(gold)}

    def respond(system: str, prompt: str) -> str:
        query = next(p for p in gold if prompt.endswith(p))
        right = gold[query]
        wrong = names[(names.index(right) + 1) % len(names)]
        return task.labels[right if order[query] % 2 == 0 else wrong]

    return respond, gold


def test_an_api_teacher_never_sees_a_gold_label_and_is_paid_once(tmp_path, monkeypatch):
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-test")
    teacher = ("arm=hybrid", "arm.teacher.model=claude", "arm.teacher.k=2", "arm.keep=1.0",
               f"paths.cache_dir={tmp_path / 'cache'}")
    cfg = compose_config(tmp_path, *FAST, *teacher)
    respond, gold = stub_teacher(cfg)
    with StubAPI(respond) as stub:
        url = f"arm.teacher.overrides=['model.api.base_url={stub.url}']"
        full = job.run(compose_config(tmp_path, *FAST, *teacher, url))
        asked = len(stub.requests)
        lora = job.run(compose_config(tmp_path, *FAST, *teacher, url, "arm.student=lora"))
    assert asked == full["hybrid/pool"] == 62 and len(stub.requests) == asked  # once per text
    prompts = [r["body"]["messages"][-1]["content"] for r in stub.requests]
    queries = [next(q for q in gold if p.endswith(q)) for p in prompts]
    assert len(set(queries)) == 62  # every pool text once
    # before each query, the same two demonstrations and nothing else: no gold label of its own
    (shown,) = {p[: -len(q)] for p, q in zip(prompts, queries, strict=True)}
    assert shown.count("Intent:") == 2
    right = sum(order % 2 == 0 for order in map(list(gold).index, queries))
    assert full["hybrid/pseudo_label_accuracy"] == pytest.approx(right / 62)
    assert full["hybrid/kept"] == 62 and full["data/n_labels"] == 2
    assert full["cost/teacher_usd"] > 0 and lora["cost/teacher_usd"] == full["cost/teacher_usd"]
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    runs = client.search_runs([e.experiment_id for e in client.search_experiments()])
    assert sorted(r.data.tags["arm"] for r in runs) == ["hybrid", "hybrid"]


def test_bad_hybrid_settings_are_one_line_before_any_run(tmp_path):
    for overrides, message in (
            (("arm.keep=0",), r"arm.keep=0 is outside \(0, 1\]"),
            (("arm.student=bert",), r"arm.student='bert' is not one of full, lora"),
            (("arm.teacher.arm=lora",), r"arm.teacher.arm=lora trains"),
            (("arm.teacher.prompts=[nope]",), r"arm.teacher.prompts names 'nope'"),
            (("arm.teacher.overrides=['model.nokey=1']",), r"sets model.nokey, which the")):
        with pytest.raises(UserError, match=message):
            job.run(compose_config(tmp_path, *FAST, "arm=hybrid", *overrides))
    assert not (tmp_path / "mlflow.db").exists()


def test_the_teacher_is_up_front_cost_in_the_break_even():
    """$1 of training and $2 of teacher labels up front, calls $0.001 cheaper than the prompt:
    cheaper after 3,000 predictions; arms without a teacher count none."""
    import pandas as pd

    from prompt_vs_finetune.report.cells import arm_costs, break_even

    table = pd.DataFrame([
        {"model": "m", "dtype": "float32", "arm": "hybrid", "fit": True, "n_labels": 8,
         "quality": 0.8, "usd_per_1k": 1.0, "train_usd": 1.0, "teacher_usd": 2.0},
        {"model": "m", "dtype": "float32", "arm": "few_shot", "fit": False, "n_labels": 8,
         "quality": 0.6, "usd_per_1k": 2.0, "train_usd": 0.0, "teacher_usd": float("nan")}])
    table = table.assign(task="t", cell=table["arm"], val_quality=float("nan"), n_validation=0)
    costs = arm_costs(table)
    assert costs.set_index("arm")["up_front"].to_dict() == {"few_shot": 0.0, "hybrid": 3.0}
    (row,) = break_even(costs).to_dict("records")
    assert row["break_even_predictions"] == pytest.approx(3000)


def test_the_hybrids_up_front_cost_includes_its_teacher_both_ways():
    """The hybrid: $1 of training, a teacher that cost $2 (0.5 with a prefix cache: its demos
    paid once), 4 labels (its teacher's demos) at $0.1; few-shot: 8 labels, $2 per 1k calls
    ($1.5 cached). Break-even: (3.4 - 0.8) / 0.001 = 2,600; cached (1.9 - 0.8) / 0.0005 = 2,200."""
    import pandas as pd

    from prompt_vs_finetune.report.cells import arm_costs, break_even

    table = pd.DataFrame([
        {"model": "m", "dtype": "float32", "arm": "hybrid", "fit": True, "n_labels": 4,
         "quality": 0.8, "usd_per_1k": 1.0, "usd_per_1k_cached": 1.0, "train_usd": 1.0,
         "teacher_usd": 2.0, "teacher_usd_cached": 0.5, "labels_usd": 0.4},
        {"model": "m", "dtype": "float32", "arm": "few_shot", "fit": False, "n_labels": 8,
         "quality": 0.6, "usd_per_1k": 2.0, "usd_per_1k_cached": 1.5, "train_usd": 0.0,
         "labels_usd": 0.8}])
    table = table.assign(task="t", cell=table["arm"], val_quality=float("nan"), n_validation=0)
    costs = arm_costs(table).set_index("arm")
    assert costs.loc["hybrid", "up_front"] == pytest.approx(1.0 + 2.0 + 0.4)
    assert costs.loc["hybrid", "up_front_cached"] == pytest.approx(1.0 + 0.5 + 0.4)
    assert costs.loc["few_shot", "up_front"] == costs.loc["few_shot", "up_front_cached"] == 0.8
    (row,) = break_even(costs.reset_index()).to_dict("records")
    assert row["break_even_predictions"] == pytest.approx(2600)
    assert row["break_even_predictions_cached"] == pytest.approx(2200)


def test_an_api_teacher_writes_the_summaries_a_student_learns(tmp_path, monkeypatch):
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-test")
    with StubAPI(lambda system, prompt: " ".join(prompt.split()[-12:-2])) as stub:
        results = job.run(compose_config(
            tmp_path, "task=summary_sample", "model=tiny", "model.tiny.n_layer=1",
            "model.max_epochs=1", "test_size=4", "train_size=32", "arm=hybrid",
            "arm.teacher.model=claude", "arm.teacher.k=1", "decoding.max_new_tokens=16",
            f"arm.teacher.overrides=['model.api.base_url={stub.url}']",
            f"paths.cache_dir={tmp_path / 'cache'}"))
    assert len(stub.requests) == results["hybrid/pool"] == 31  # 32 labelled less 1 demo
    assert results["hybrid/kept"] == 31 and "hybrid/pseudo_label_accuracy" not in results
    assert results["data/n_labels"] == 1 and results["data/n_train"] > 1
    assert 0 <= results["test/rougeL"] <= 1
