"""Faults a hostile or unlucky user meets (issue 28): each ends in one line, a finished exit
and a run that is not left RUNNING; none hangs, none gives a meaningless number."""

import json
import re

import pytest

from prompt_vs_finetune import job
from prompt_vs_finetune.errors import UserError, causes

from .chat_stub import StubAPI
from .conftest import compose_config
from .faulty import ctrl_c_as_a_run_opens
from .test_api import SECRET, _runs
from .test_cli import pvf, runs_in
from .test_report import store  # noqa: F401 - a fixture


def test_a_chain_of_causes_that_loops_is_walked_once():
    """An error raised from itself (what a hosted job's odd reply used to make) or two that
    name each other: the walk ends, and the CLI's disk-full check with it."""
    from prompt_vs_finetune.cli import disk_full

    err = ValueError("odd reply")
    err.__cause__ = err
    assert list(causes(err)) == [err] and disk_full(err) is None
    a, b = KeyError("a"), KeyError("b")
    a.__cause__, b.__context__ = b, a
    assert list(causes(a)) == [a, b]


def _openai(tmp_path, url, *extra):
    return compose_config(tmp_path, "task=intent_sample", "model=openai_compatible",
                          "arm=zero_shot", "test_size=2", f"model.api.base_url={url}/v1",
                          "model.api.max_retries=0", f"paths.cache_dir={tmp_path / 'cache'}",
                          *extra)


REPLIES = {
    "no choices": (b'{"id": "x", "object": "chat.completion", "choices": []}',
                   "application/json"),
    "an HTML page": (b"<html><body>Gateway login</body></html>", "text/html"),
    "not JSON": (b"{this is not json", "application/json"),
    "an HTML page sent as JSON": (b"<html><body>Bad gateway</body></html>", "application/json"),
    "choices not objects": (b'{"id": "x", "object": "chat.completion", "choices": [7]}',
                            "application/json"),
    "no usage": (json.dumps({"id": "x", "object": "chat.completion", "created": 0,
                             "model": "m", "choices": [{"index": 0, "finish_reason": "stop",
                             "message": {"role": "assistant", "content": "x"}}]}).encode(),
                 "application/json"),
    "negative usage": (json.dumps({"id": "x", "object": "chat.completion", "created": 0,
                                   "model": "m", "choices": [{
                                       "index": 0, "finish_reason": "stop",
                                       "message": {"role": "assistant", "content": "x"}}],
                                   "usage": {"prompt_tokens": -5, "completion_tokens": 1,
                                             "total_tokens": -4}}).encode(),
                       "application/json"),
}


@pytest.mark.parametrize("reply", sorted(REPLIES))
def test_a_reply_that_is_not_a_chat_reply_is_one_line_and_a_failed_run(tmp_path, monkeypatch,
                                                                       reply):
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    with StubAPI(lambda s, p: "x", raw=REPLIES[reply]) as stub:
        with pytest.raises(UserError, match="sent a reply that is not a openai_compatible chat "
                                            "reply .*; check model.api.base_url") as caught:
            job.run(_openai(tmp_path, stub.url))
    assert caught.value.__cause__ is not caught.value
    _, (run,) = _runs(tmp_path)
    assert run.info.status == "FAILED"


def test_pvf_on_an_odd_reply_exits_with_one_line(tmp_path, monkeypatch):
    """The command itself (it used to spin at full CPU after marking the run FAILED)."""
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    with StubAPI(lambda s, p: "x", raw=REPLIES["no choices"]) as stub:
        done = pvf(tmp_path, "task=intent_sample", "model=openai_compatible", "arm=zero_shot",
                   "test_size=2", f"model.api.base_url={stub.url}/v1",
                   "model.api.max_retries=0", timeout=120)
    assert done.returncode != 0, done.stderr[-2000:]
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "not a openai_compatible chat reply" in errors[0]
    _, (run,) = runs_in(tmp_path)
    assert run.info.status == "FAILED"


def test_a_report_for_a_negative_volume_is_refused(tmp_path):
    from prompt_vs_finetune.report import main

    with pytest.raises(SystemExit) as exited:
        main(["--tracking-uri", f"sqlite:///{tmp_path / 'm.db'}", "--volume", "-5"])
    assert exited.value.code == 2 and not (tmp_path / "reports").exists()


def test_a_negative_token_price_is_refused_before_any_call(tmp_path, monkeypatch):
    monkeypatch.setenv("ANTHROPIC_API_KEY", SECRET)
    cfg = compose_config(tmp_path, "task=intent_sample", "model=claude",
                         "cost.token_prices.claude-haiku-4-5.input=-3")
    with pytest.raises(UserError, match=r"cost.token_prices.claude-haiku-4-5.input=-3 is not "
                                        r">= 0; a price cannot be negative"):
        job.run(cfg)
    assert not (tmp_path / "mlflow.db").exists() or not _runs(tmp_path)[1]


def test_a_secret_through_a_config_value_is_refused_and_sent_nowhere(tmp_path, monkeypatch):
    """A label that interpolates the API key would send it in every prompt and store it in
    config.yaml: refused before any call or run."""
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    with StubAPI(lambda s, p: "x") as stub:
        cfg = _openai(tmp_path, stub.url,
                      "task.labels.card_arrival='card ${oc.env:OPENAI_API_KEY}'")
        with pytest.raises(UserError, match=r"task.labels.card_arrival holds the value of "
                                            r"\$OPENAI_API_KEY; .*remove the interpolation"):
            job.run(cfg)
        assert stub.requests == []
    assert not (tmp_path / "mlflow.db").exists() or not _runs(tmp_path)[1]


def test_a_name_with_a_path_in_it_is_refused_before_hydra_writes(tmp_path):
    done = pvf(tmp_path, "task=intent_sample", "model=tiny", "task.name=../../escaped",
               timeout=120)
    assert done.returncode == 2
    assert "task.name='../../escaped' is not a plain name" in done.stderr
    assert not (tmp_path.parent.parent / "escaped").exists() and not (tmp_path / "outputs").exists()


def test_a_run_left_running_by_a_killed_process_is_ended_by_the_next_run(tmp_path):
    """SIGKILL right after the run opened (nothing could end it): the same job run again ends
    that run KILLED, with the reason, and opens its own."""
    import socket
    import subprocess

    from mlflow.tracking import MlflowClient

    from prompt_vs_finetune.tracking.naming import job_record

    cfg = compose_config(tmp_path, "task=intent_sample", "model=tiny", "model.tiny.n_layer=1",
                         "test_size=4")
    gone = subprocess.Popen(["true"])
    gone.wait()  # a pid whose process has ended
    client = MlflowClient(cfg.mlflow.tracking_uri)
    experiment = client.create_experiment(cfg.mlflow.experiment_name)
    orphan = client.create_run(experiment, tags={
        "config_hash": job_record(cfg).tags["config_hash"], "pvf.pid": str(gone.pid),
        "pvf.host": socket.gethostname()}).info.run_id
    job.run(cfg)
    old = client.get_run(orphan)
    assert old.info.status == "KILLED" and "ended without closing it" in old.data.tags["stopped"]
    statuses = sorted(r.info.status for r in client.search_runs([experiment]))
    assert statuses == ["FINISHED", "KILLED"]


@pytest.mark.parametrize(("override", "message"), [
    ("model.api.timeout_s=null", r"model.api.timeout_s=None is not a number"),
    ("model.api.timeout_s=0", r"model.api.timeout_s=0 is outside \(0, 3600\]"),
    ("model.api.max_retries=-1", r"model.api.max_retries=-1 is not 0\.\.20"),
    ("model.api.max_concurrency=0", r"model.api.max_concurrency=0 is not 1\.\.256"),
])
def test_a_hosted_client_without_a_finite_deadline_is_refused(tmp_path, monkeypatch, override,
                                                               message):
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    with pytest.raises(UserError, match=message):
        job.run(_openai(tmp_path, "http://127.0.0.1:9", override))


def test_a_server_that_trickles_its_reply_is_cut_at_the_total_deadline(tmp_path, monkeypatch):
    """A byte every 0.2 s never trips a per-read timeout: the whole reply is bounded by
    model.api.timeout_s (each try), so the job ends in one line instead of waiting forever."""
    import socket
    import threading
    import time

    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    server = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def trickle():
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except OSError:
                return
            conn.recv(65536)
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                         b"Content-Length: 100000\r\n\r\n")
            began = time.monotonic()
            try:  # 40 s at most, so that without the deadline the test fails, not hangs
                while not stop.is_set() and time.monotonic() - began < 40:
                    conn.sendall(b" ")
                    time.sleep(0.2)
            except OSError:
                pass
            conn.close()

    threading.Thread(target=trickle, daemon=True).start()
    url = f"http://127.0.0.1:{server.getsockname()[1]}"
    started = time.monotonic()
    try:
        with pytest.raises(UserError, match=r"cannot reach .* \(Request timed out.\) after 0 "
                                            r"retries"):
            job.run(_openai(tmp_path, url, "model.api.timeout_s=1.5"))
    finally:
        stop.set()
        server.close()
    assert time.monotonic() - started < 30
    _, (run,) = _runs(tmp_path)
    assert run.info.status == "FAILED"


CTRL_C_AS_THE_JOB_RUN_OPENS = ctrl_c_as_a_run_opens("""
from pathlib import Path
from prompt_vs_finetune import job
from tests.conftest import compose_config
job.run(compose_config(Path(sys.argv[1]), "task=intent_sample", "model=tiny",
                       "model.tiny.n_layer=1", "arm=zero_shot", "test_size=2"))
""")


def test_ctrl_c_as_a_job_run_opens_ends_it_killed(tmp_path):
    """The Ctrl-C arrives while MLflow creates the job's run: it is held until the block that
    ends the run, so the run ends KILLED, never RUNNING. (In a process of its own: a signal
    reaches the main thread only.)"""
    import subprocess
    import sys
    from pathlib import Path

    done = subprocess.run([sys.executable, "-c", CTRL_C_AS_THE_JOB_RUN_OPENS, str(tmp_path)],
                          capture_output=True, text=True, timeout=300,
                          cwd=Path(__file__).parent.parent)
    assert done.returncode == 130, done.stderr[-2000:]
    _, (run,) = _runs(tmp_path)
    assert run.info.status == "KILLED"


@pytest.mark.parametrize("args, message", [
    (["--out", "{tmp}/a_file"], r"^error: --out .*a_file is a file; name a folder"),
    (["--filter", "bogus(("], r"^error: --filter 'bogus\(\(' is not an MLflow filter \(Invalid"),
    (["--runs-from", "{tmp}/nowhere"], r"^error: --runs-from .*nowhere is not a folder; name"),
])
def test_a_report_argument_that_cannot_work_is_one_line(tmp_path, capsys, args, message):
    """Before: --out naming a file replaced the file with the report's folder; a bad filter
    was MLflow's traceback; a missing --runs-from said "no finished pvf runs"."""
    import re

    from prompt_vs_finetune.report import main

    (tmp_path / "a_file").write_text("keep me")
    with pytest.raises(SystemExit) as exited:
        main(["--tracking-uri", f"sqlite:///{tmp_path / 'm.db'}",
              *[a.replace("{tmp}", str(tmp_path)) for a in args]])
    assert exited.value.code == 2
    assert re.match(message, capsys.readouterr().err.strip())
    assert (tmp_path / "a_file").read_text() == "keep me" and not (tmp_path / "m.db").exists()


def test_a_pvf_project_without_a_conf_folder_is_named(tmp_path):
    import subprocess
    import sys

    from .test_cli import job_env

    done = subprocess.run([sys.executable, "-m", "prompt_vs_finetune", "model=tiny"],
                          cwd=tmp_path, env=job_env(PVF_PROJECT=str(tmp_path / "nowhere")),
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert done.stderr.strip() == (f"error: PVF_PROJECT={tmp_path / 'nowhere'} holds no "
                                   f"conf/config.yaml; run `pvf-init {tmp_path / 'nowhere'}` "
                                   "to make it a project, or unset PVF_PROJECT")


def test_ctrl_c_anywhere_in_a_command_is_one_line_and_exit_130(monkeypatch, capsys):
    """Ctrl-C during the data load, the scoring or a report was a KeyboardInterrupt traceback
    and exit 1; a shell expects 130."""
    from prompt_vs_finetune import warm

    monkeypatch.setitem(warm.ENTRIES, "pvf", ("tests.faulty", "interrupt"))
    monkeypatch.setattr("atexit.register", lambda function: None)
    with pytest.raises(SystemExit) as exited:
        warm._run_entry("pvf")
    assert exited.value.code == 130
    assert capsys.readouterr().err == "error: pvf stopped by Ctrl-C (a run it had open ends " \
                                      "KILLED)\n"


@pytest.mark.parametrize("model", ["claude", "openai_compatible"])
def test_a_reply_that_is_not_json_is_one_line_not_a_traceback(tmp_path, monkeypatch, model):
    """Issue 38: an HTTP 200 whose body is not JSON used to end in a JSONDecodeError
    traceback; it is retried as the client's policy says (max_retries=1: asked twice), then
    one line and a FAILED run."""
    monkeypatch.setenv("ANTHROPIC_API_KEY", SECRET)
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    with StubAPI(lambda s, p: "x", raw=REPLIES["not JSON"]) as stub:
        base = stub.url + ("/v1" if model == "openai_compatible" else "")
        done = pvf(tmp_path, "task=intent_sample", f"model={model}", "arm=zero_shot",
                   "test_size=2", f"model.api.base_url={base}", "model.api.max_retries=1",
                   timeout=120)
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert done.returncode != 0 and "Traceback" not in done.stderr, done.stderr[-2000:]
    assert len(errors) == 1 and f"not a {model.replace('claude', 'anthropic')} chat reply" \
        in errors[0] and "JSONDecodeError" in errors[0]
    assert len(stub.requests) == 2 * len({r["body"]["messages"][-1]["content"]
                                          for r in stub.requests})
    _, (run,) = runs_in(tmp_path)
    assert run.info.status == "FAILED"


TINY = ("task=intent_sample", "model=tiny", "model.tiny.n_layer=1", "arm=zero_shot",
        "test_size=2")
STORE = "error: the MLflow tracking store 'sqlite:///mlflow.db': "
STORE_FAULTS = {"full": r"its disk \(.+\) is full; free space there",
                "read_only": r"it cannot be written \(a read-only or immutable file",
                "locked": "it is locked by another process"}


def test_a_store_that_fails_during_a_job_is_one_line_and_no_run_stays_running(tmp_path):
    """Issue 38: the store's disk filling during a run gave two SQLAlchemy tracebacks, then a
    line that blamed the working folder; a read-only or locked store, tracebacks. Now one line
    naming the store and its cause, MLflow's output in the job's log file; a run the store
    could not end is ended by the next job."""
    import re

    for kind, cause in STORE_FAULTS.items():
        done = pvf(tmp_path, *TINY, "+callbacks.fault._target_=tests.faulty.StoreFault",
                   f"+callbacks.fault.kind={kind}", "cache_predictions=false", timeout=300)
        assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr[-3000:]
        (line,) = done.stderr.strip().splitlines()
        assert re.match(STORE + cause, line), line
    log = max(tmp_path.glob("outputs/**/*.log"), key=lambda p: p.stat().st_mtime).read_text()
    assert "sqlite3.OperationalError: database is locked" in log  # MLflow's, in the log file
    assert pvf(tmp_path, *TINY, timeout=300).returncode == 0
    _, runs = runs_in(tmp_path)
    assert sorted(run.info.status for run in runs) == ["FAILED", "FINISHED", "KILLED", "KILLED"]


def test_a_store_damaged_as_a_sweep_logs_its_summary_is_one_line(tmp_path):
    """Issue 38: a store truncated while a sweep wrote its summary was a traceback."""
    import re

    done = pvf(tmp_path, "-m", *TINY, "seed=0,1",
               "+hydra.callbacks.fault._target_=tests.faulty.BreakStoreAtSweepEnd",
               "+hydra.callbacks.fault.kind=truncated", timeout=300)
    output = done.stdout + done.stderr
    assert "Traceback" not in output and "2 finished, 0 failed" in done.stderr, output[-3000:]
    (line,) = [line for line in output.splitlines() if "error:" in line]
    assert re.search(r"error: the sweep summary was not logged into run \w+: "
                     + STORE.removeprefix("error: ") + "it is damaged", line), line


def report_command(tmp_path, *args, fault: str = ""):
    """`pvf-report` as a command, with the store broken first (tests.faulty.break_store)."""
    import subprocess
    import sys

    from .test_cli import job_env

    program = "from prompt_vs_finetune.warm import report; report()"
    if fault:
        program = f"import tests.faulty as f; f.break_store({fault!r}, 'mlflow.db'); {program}"
    return subprocess.run([sys.executable, "-c", program, "--out", str(tmp_path / "report"),
                           *args], cwd=tmp_path, env=job_env(PVF_WARM="0"),
                          capture_output=True, text=True, timeout=300)


def test_pvf_report_reads_a_store_and_makes_none(tmp_path):
    """Issue 38: `pvf-report --tracking-uri sqlite:///missing/dir/m.db` made the folder and an
    empty store, then blamed --experiment; a damaged store was a traceback."""
    done = report_command(tmp_path, "--tracking-uri", "sqlite:///missing/dir/m.db")
    assert done.stderr.strip() == (
        "error: the MLflow tracking store 'sqlite:///missing/dir/m.db' does not exist "
        f"({tmp_path}/missing/dir/m.db); run pvf first, or name the store pvf used")
    assert not (tmp_path / "missing").exists()
    (tmp_path / "mlflow.db").write_bytes(b"SQLite format 3\0" + b"\xab" * 5000)
    done = report_command(tmp_path)
    assert done.returncode == 1 and done.stderr.strip().startswith(
        "error: cannot read the MLflow tracking store 'sqlite:///mlflow.db': it is damaged ("), \
        done.stderr[-3000:]


@pytest.mark.usefixtures("store")  # finished runs in tmp_path/mlflow.db
def test_pvf_report_on_a_store_it_cannot_write_is_one_line(tmp_path):
    """Issue 38: the runs read, the report's own run could not be made: a traceback as it
    created its `pvf-report` experiment."""
    done = report_command(tmp_path, fault="read_only")
    assert done.returncode == 1 and done.stderr.strip() == (
        "error: cannot log the report into the MLflow tracking store 'sqlite:///mlflow.db': it "
        "cannot be written (a read-only or immutable file, or folder); make it writable"), \
        done.stderr[-3000:]
    assert (tmp_path / "report" / "report.md").is_file()


def _free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _mlflow_server(folder, port: int):
    """`mlflow server` on `port`, its sqlite store and artifacts in `folder`, once it answers
    (its own process group: stopping it stops its uvicorn worker too)."""
    import os
    import subprocess
    import sys
    import time

    import requests

    server = subprocess.Popen(
        [sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(port),
         "--workers", "1", "--backend-store-uri", f"sqlite:///{folder / 'server.db'}",
         "--artifacts-destination", str(folder / "artifacts")],
        env=dict(os.environ, MLFLOW_SERVER_ENABLE_JOB_EXECUTION="false"),
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 180
    while True:
        try:
            requests.get(f"http://127.0.0.1:{port}/health", timeout=2).raise_for_status()
            return server
        except requests.RequestException:
            assert server.poll() is None and time.monotonic() < deadline, "no mlflow server"
            time.sleep(0.3)


def _stop(server) -> None:
    """At once, as a crash or a killed container stops it."""
    import os
    import signal

    os.killpg(server.pid, signal.SIGKILL)
    server.wait(timeout=60)


def test_a_sweep_outlives_a_tracking_server_restart(tmp_path):
    """Issue 38: a sweep whose `mlflow server` restarts mid-sweep (killed as the second job
    starts, then started again: down for its start-up, 15-25 s here) finishes every run with
    its metrics; MLflow's HTTP retries carry it (a job that opens its run meanwhile too), and
    say so in one pvf line, not urllib3's `Retrying (...)` warnings."""
    import subprocess
    import sys
    import time

    from mlflow.tracking import MlflowClient

    from .test_cli import job_env

    port = _free_port()
    server = _mlflow_server(tmp_path, port)
    env = job_env(PVF_WARM="0")
    env["MLFLOW_TRACKING_URI"] = f"http://127.0.0.1:{port}"
    env["MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR"] = "1"  # MLflow's 2: retries 1, 2, 4, ... s apart
    sweep = subprocess.Popen(
        [sys.executable, "-m", "prompt_vs_finetune", "-m", *TINY, "seed=0,1,2,3",
         f"hydra.sweep.dir={tmp_path / 'sweep'}"], cwd=tmp_path, env=env, text=True,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        while not (tmp_path / "sweep" / ".pvf_jobs" / "0.json").exists():
            assert sweep.poll() is None, sweep.stdout.read()[-3000:]
            time.sleep(0.1)
        _stop(server)  # as the second job starts
        server = _mlflow_server(tmp_path, port)
        output, _ = sweep.communicate(timeout=600)
    finally:
        sweep.kill()
        _stop(server)
    assert sweep.returncode == 0 and "4 finished, 0 failed" in output, output[-3000:]
    assert "Retrying (" not in output and "Traceback" not in output, output[-3000:]
    assert output.count("does not answer; retrying") == 1, output[-3000:]
    client = MlflowClient(f"sqlite:///{tmp_path / 'server.db'}")
    runs = [r for r in client.search_runs([client.get_experiment_by_name("intent_sample")
                                           .experiment_id]) if "pvf.parent" not in r.data.tags]
    assert sorted(r.data.tags["seed"] for r in runs) == ["0", "1", "2", "3"]
    assert all(r.info.status == "FINISHED" and "test/accuracy" in r.data.metrics for r in runs)


def test_a_tracking_server_that_stays_down_ends_each_job_in_one_line(tmp_path):
    """Nothing answers at the address: each job of a sweep ends in one line naming the server,
    at once (a server this process has not reached is not waited for); no run is made."""
    done = pvf(tmp_path, "-m", *TINY, "seed=0,1",
               f"mlflow.tracking_uri=http://127.0.0.1:{_free_port()}", timeout=300)
    output = done.stdout + done.stderr
    errors = [line.partition("error: ")[2] for line in output.splitlines() if "error: " in line]
    assert done.returncode == 1 and "Traceback" not in output, output[-3000:]
    assert len(errors) == 2 and all(re.match(
        r"cannot use the MLflow tracking store 'http://127\.0\.0\.1:\d+': it cannot be reached "
        r"\(no answer to GET /health \(ConnectionError\)\); start the server", e) for e in errors)
