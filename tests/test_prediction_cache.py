"""A study never computes the same predictions twice (issue 17): zero-shot across seeds is
scored once; the second run is logged from the cache, marked so, with the first run's
measured time; anything that changes the predictions changes the key."""

import pytest
from mlflow.tracking import MlflowClient

from prompt_vs_finetune import job
from prompt_vs_finetune.backends import local

from .conftest import compose_config

FAST = ("task=intent_sample", "model=tiny", "model.tiny.n_layer=1", "test_size=8",
        "arm=zero_shot")


def runs(tmp_path):
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    return client.search_runs([e.experiment_id for e in client.search_experiments()],
                              order_by=["attributes.start_time ASC"])


def test_zero_shot_is_scored_once_for_every_seed(tmp_path, monkeypatch):
    cache = f"paths.cache_dir={tmp_path / 'cache'}"
    first = job.run(compose_config(tmp_path, *FAST, cache, "seed=0"))

    def no_model(*args, **kwargs):
        raise AssertionError("the model was loaded for cached predictions")

    with monkeypatch.context() as patch:
        patch.setattr(local, "load_model", no_model)
        second = job.run(compose_config(tmp_path, *FAST, cache, "seed=1"))
    made, served = runs(tmp_path)
    assert "predictions_cached" not in made.data.tags
    assert served.data.tags["predictions_cached"] == "true"
    assert served.data.tags["predictions_from_run"] == made.info.run_id
    assert served.info.status == "FINISHED" and served.data.tags["seed"] == "1"
    for key in ("test/accuracy", "test/perplexity", "cost/usd_per_1k_predictions",
                "cost/eval_seconds", "cost/eval_tokens"):
        assert second[key] == first[key], key  # the first run's measured time, too


@pytest.mark.parametrize("change", ["task.prompt=question", "inference_dtype=bfloat16",
                                    "cache_predictions=false"])
def test_what_changes_the_predictions_is_scored_again(tmp_path, change):
    cache = f"paths.cache_dir={tmp_path / 'cache'}"
    job.run(compose_config(tmp_path, *FAST, cache))
    job.run(compose_config(tmp_path, *FAST, cache, change))
    assert "predictions_cached" not in runs(tmp_path)[-1].data.tags


def test_fine_tuned_arms_are_never_served_from_it(tmp_path):
    cache = f"paths.cache_dir={tmp_path / 'cache'}"
    tuned = (*FAST[:-1], "arm=full_finetune", "model.max_epochs=1", "train_size=32")
    for seed in (0, 0):
        job.run(compose_config(tmp_path, *tuned, cache, f"seed={seed}"))
    assert not [r for r in runs(tmp_path) if "predictions_cached" in r.data.tags]
    assert not (tmp_path / "cache/predictions").exists()
