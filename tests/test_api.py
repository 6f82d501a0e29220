"""API models as prompting arms, against a local stub of the Anthropic and OpenAI APIs."""

import json
import time

import mlflow
import pytest
from mlflow.tracking import MlflowClient

from prompt_vs_finetune import job
from prompt_vs_finetune.errors import UserError
from prompt_vs_finetune.tasks import Task, job_splits
from prompt_vs_finetune.tasks.classification import label_matcher

from .chat_stub import StubAPI, tokens
from .conftest import compose_config

SECRET = "sk-test-DO-NOT-LOG-9f3c2e"
TEST_SIZE = 16


def _runs(tmp_path):
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    return client, client.search_runs([e.experiment_id for e in client.search_experiments()])


def _gold_by_prompt(cfg):
    """{rendered prompt of a test row: its gold label}, to make the stub answer by rule."""
    task, splits, _, _ = job_splits(cfg.task, cfg.data_dir, cfg.train_size, cfg.test_size,
                                    cfg.data_seed)
    return {task.prompt(r["text"]): r["label"] for r in splits["test"]}, task


def _classifier_stub(gold_by_prompt, task):
    """Row i (in order of arrival) is answered: exact verbalization, the label name shouted,
    the verbalization quoted with a full stop, or a sentence that names no label."""
    def respond(system, prompt):
        time.sleep(0.02)  # a reply takes a while: concurrent requests overlap
        label = next(g for p, g in gold_by_prompt.items() if prompt.endswith(p))
        style = sorted(gold_by_prompt).index(next(p for p in gold_by_prompt
                                                  if prompt.endswith(p))) % 4
        verbal = task.labels[label]
        return [verbal, label.upper(), f'"{verbal}".', "I am not sure what this is."][style]

    return respond


@pytest.fixture
def key(monkeypatch):
    monkeypatch.setenv("ANTHROPIC_API_KEY", SECRET)
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)


def _claude(tmp_path, url, *extra):
    return compose_config(tmp_path, "task=intent_sample", "model=claude", "arm=few_shot",
                          "arm.k=2", f"test_size={TEST_SIZE}", f"model.api.base_url={url}",
                          "model.api.max_concurrency=4", f"paths.cache_dir={tmp_path / 'cache'}",
                          *extra)


def test_claude_classifies_with_retries_usage_cost_and_no_key_in_mlflow(tmp_path, key):
    cfg = _claude(tmp_path, "http://unused")
    gold, task = _gold_by_prompt(cfg)
    with StubAPI(_classifier_stub(gold, task), fail=(429, 500)) as stub:
        results = job.run(_claude(tmp_path, stub.url))

    assert stub.statuses[:2] == [429, 500] and len(stub.requests) == TEST_SIZE
    assert 1 < stub.max_in_flight <= 4  # concurrent, within model.api.max_concurrency
    assert results["api/retries"] == 2  # both failures retried by the SDK, nothing lost
    assert all(SECRET in r["headers"].get("x-api-key", "") + r["headers"].get("authorization", "")
               for r in stub.requests)  # the key is sent (the SDK picks the header)
    body = stub.requests[0]["body"]
    assert body["model"] == "claude-haiku-4-5" and body["max_tokens"] == 16
    assert "- card arrival" in body["system"] or "- billing" in body["system"]
    assert body["messages"][0]["content"].count("Intent:") == 3  # 2 demos + the query
    # styles 0-2 map to the gold label, style 3 matches none: counted wrong and unparsed
    assert results["test/accuracy"] == pytest.approx(0.75)
    assert results["test/unparsed_rate"] == pytest.approx(0.25)
    # usage from the API's own fields times conf/cost/token_prices/anthropic.yaml ($1 / $5)
    n_in = sum(tokens(r["body"]["system"]) + tokens(r["body"]["messages"][-1]["content"])
               for r in stub.requests)
    n_out = results["cost/generated_tokens"]
    assert results["cost/eval_tokens"] == n_in
    # logged to 4 significant digits (job.significant)
    assert results["cost/usd"] == pytest.approx(n_in * 1e-6 + n_out * 5e-6, rel=1e-3)
    assert results["cost/usd_per_1k_predictions"] == pytest.approx(
        results["cost/usd"] / TEST_SIZE * 1000, rel=1e-3)
    assert results["api/usd_billed"] == pytest.approx(results["cost/usd"], rel=1e-3)

    client, runs = _runs(tmp_path)
    (run,) = runs
    assert run.info.status == "FINISHED" and run.data.tags["model"] == "claude"
    assert "test/perplexity" not in run.data.metrics  # absent, not zero
    assert run.data.metrics["test/unparsed_rate"] == pytest.approx(0.25)
    assert run.data.params["model.api.api_key_env"] == "ANTHROPIC_API_KEY"
    files = mlflow.artifacts.download_artifacts(run_id=run.info.run_id,
                                                dst_path=str(tmp_path / "artifacts"),
                                                tracking_uri=cfg.mlflow.tracking_uri)
    table = (tmp_path / "artifacts" / "predictions.csv").read_text()
    assert "<unparsed>" in table and "I am not sure" in table
    stored = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert files and any(p.name == "mlflow.db" for p in stored)
    for path in stored:
        assert SECRET.encode() not in path.read_bytes(), path


def test_a_second_run_is_served_from_the_cache(tmp_path, key):
    cfg = _claude(tmp_path, "http://unused")
    gold, task = _gold_by_prompt(cfg)
    with StubAPI(_classifier_stub(gold, task)) as stub:
        first = job.run(_claude(tmp_path, stub.url))
        second = job.run(_claude(tmp_path, stub.url))
    assert len(stub.requests) == TEST_SIZE  # the second run sent nothing
    assert first["api/cache_hits"] == 0 and second["api/cache_hits"] == TEST_SIZE
    assert second["test/accuracy"] == first["test/accuracy"]
    assert second["cost/usd"] == pytest.approx(first["cost/usd"])  # what the predictions cost
    assert second["api/usd_billed"] == 0.0  # what this run paid
    cached = list((tmp_path / "cache" / "api" / "anthropic").rglob("*.json"))
    assert len(cached) == TEST_SIZE
    assert all(SECRET not in p.read_text() for p in cached)


def test_openai_compatible_summarizes_through_the_chat_endpoint(tmp_path, key):
    def config(url):
        return compose_config(tmp_path, "task=summary_sample", "model=openai_compatible",
                              "arm=zero_shot", "test_size=6", f"model.api.base_url={url}/v1",
                              f"paths.cache_dir={tmp_path / 'cache'}")

    cfg = config("http://unused")
    task, splits, _, _ = job_splits(cfg.task, cfg.data_dir, cfg.train_size, cfg.test_size,
                                    cfg.data_seed)
    reference = {task.prompt(r["text"]): r["references"][0] for r in splits["test"]}

    def respond(system, prompt):
        return reference[prompt]  # a perfect summarizer

    with StubAPI(respond, fail=(429,)) as stub:
        results = job.run(config(stub.url))
    assert stub.requests[0]["path"] == "/v1/chat/completions"
    assert stub.requests[0]["headers"]["authorization"] == f"Bearer {SECRET}"
    assert stub.requests[0]["body"]["messages"][0]["role"] == "system"
    assert results["test/rougeL_best"] == pytest.approx(1.0)  # the reply is reference 0
    assert results["api/retries"] == 1
    n_out = sum(tokens(s) for s in reference.values())
    n_in = results["cost/eval_tokens"]
    assert results["cost/usd"] == pytest.approx(n_in * 0.15e-6 + n_out * 0.60e-6,  # gpt-4o-mini
                                                rel=1e-3)
    assert "test/perplexity" not in results


def test_label_mapping_exact_then_normalised(tmp_path):
    task = Task.from_config(compose_config(tmp_path, "task=intent_sample").task)
    match = label_matcher(task)
    problem = task.label_names.index("card_arrival")
    assert match("card arrival") == problem  # the verbalization
    assert match("card_arrival") == problem  # the label name
    assert match("CARD_ARRIVAL") == problem
    assert match("  'Card-arrival'. ") == problem
    assert match("exchange rate") == task.label_names.index("exchange_rate")
    assert match("card arrivals") is None  # normalised, not fuzzy
    assert match("exchange rate, I think") is None


def test_the_chat_layout_sends_each_demo_as_a_turn(tmp_path, key):
    """prompt.chat=true: the demos are earlier user / assistant turns, the query the last."""
    gold, task = _gold_by_prompt(_claude(tmp_path, "http://unused"))
    with StubAPI(_classifier_stub(gold, task)) as stub:
        job.run(_claude(tmp_path, stub.url, "prompt.chat=true"))
    messages = stub.requests[0]["body"]["messages"]
    assert [m["role"] for m in messages] == ["user", "assistant"] * 2 + ["user"]
    assert all(m["content"].count("Intent:") == 1 for m in messages if m["role"] == "user")
    assert {messages[1]["content"], messages[3]["content"]} <= set(task.labels.values())


@pytest.mark.parametrize("arm", ["full_finetune", "lora"])
def test_fine_tuning_an_api_model_is_refused(tmp_path, key, arm):
    with pytest.raises(UserError, match="hosted API model"):
        job.run(compose_config(tmp_path, "task=intent_sample", "model=claude",
                                      f"arm={arm}"))
    assert not (tmp_path / "mlflow.db").exists()


def test_missing_key_or_price_fails_before_any_run(tmp_path, monkeypatch):
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    with pytest.raises(UserError, match="ANTHROPIC_API_KEY"):
        job.run(_claude(tmp_path, "http://unused"))
    monkeypatch.setenv("ANTHROPIC_API_KEY", SECRET)
    with pytest.raises(UserError, match="no token prices for API model 'claude-x'"):
        job.run(_claude(tmp_path, "http://unused", "model.api.model=claude-x"))
    client, runs = _runs(tmp_path) if (tmp_path / "mlflow.db").exists() else (None, [])
    assert runs == []


def test_rejected_key_is_one_line(tmp_path, key):
    with StubAPI(lambda s, p: "x", fail=(401,)) as stub:
        with pytest.raises(UserError, match="refused the key in ANTHROPIC_API_KEY"):
            job.run(_claude(tmp_path, stub.url, "model.api.max_concurrency=1"))
    _, (run,) = _runs(tmp_path)
    assert run.info.status == "FAILED"
    assert json.dumps(run.data.tags).count(SECRET) == 0


def test_a_key_in_the_base_url_reaches_no_file_of_a_failed_run(tmp_path, key, caplog):
    """A key in base_url's query string, and a request that fails: the params, the error tag,
    config.yaml, traceback.txt and the log hold it redacted."""
    in_url = "sk-in-url-7d1e0b"
    url = f"'http://127.0.0.1:9/v1?api_key={in_url}'"  # nothing listens on port 9
    with pytest.raises(UserError, match=r"cannot reach http://127.0.0.1:9/v1\?api_key=\*\*\* "):
        job.run(_claude(tmp_path, url, "model.api.max_retries=0", "model.api.timeout_s=5"))
    _, (run,) = _runs(tmp_path)
    assert run.info.status == "FAILED" and run.data.tags["error"]
    assert run.data.params["model.api.base_url"].endswith("?api_key=***")
    mlflow.artifacts.download_artifacts(run_id=run.info.run_id, dst_path=str(tmp_path / "art"),
                                        tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}")
    written = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert {"traceback.txt", "config.yaml", "mlflow.db"} <= {p.name for p in written}
    assert [str(p) for p in written if in_url.encode() in p.read_bytes()] == []
    assert in_url not in caplog.text
