"""Sweeps that lose nothing: a file per job's outcome (any launcher's worker can write it)."""

import json
import logging
import sys
import time
from pathlib import Path

from hydra.core.hydra_config import HydraConfig
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.experimental.callback import Callback
from mlflow.entities import Metric, RunTag
from mlflow.tracking import MlflowClient
from omegaconf import OmegaConf
from rich.console import Console
from rich.table import Table

from ..errors import first_line
from .naming import SWEEP_FILE, in_multirun
from .provenance import clip
from .secrets import redact, redact_override
from .store import store_problem

log = logging.getLogger(__name__)
JOBS_DIR = ".pvf_jobs"
OPTIMISATION_FILE = "optimization_results.yaml"  # an optimising sweeper's best (Optuna's)
HEADLINE = ("test/accuracy", "test/rougeL", "cost/usd_per_1k_predictions")  # shown per job
_job_run: dict[str, str | None] = {}  # this process's current job: its run and parent run


def note_run(run_id: str, parent_run_id: str | None) -> None:  # for `record_job`
    _job_run.update(run_id=run_id, parent_run_id=parent_run_id)


def record_job(error: str | None = None, results: dict[str, float] | None = None) -> None:
    """This job's outcome and headline numbers for the summary (in a multirun)."""
    if not in_multirun():
        return
    hydra = HydraConfig.get()
    folder = Path(hydra.sweep.dir) / JOBS_DIR
    folder.mkdir(parents=True, exist_ok=True)
    record = {"num": hydra.job.num, "overrides": [redact(o) for o in hydra.overrides.task],
              "status": "failed" if error else "finished", "error": error,
              "results": {k: results[k] for k in HEADLINE if k in (results or {})},
              # the next job in this process starts without a run
              "run_id": _job_run.pop("run_id", None),
              "parent_run_id": _job_run.pop("parent_run_id", None)}
    (folder / f"{hydra.job.num}.json").write_text(json.dumps(record))


def optimisation_result(sweep_dir: Path) -> dict | None:
    """What an optimising sweeper wrote: `best_params`, `best_value` (Optuna)."""
    path = sweep_dir / OPTIMISATION_FILE
    return OmegaConf.to_container(OmegaConf.load(path), resolve=True) if path.is_file() else None


def log_sweep_summary(tracking_uri: str, run_id: str, jobs: list[dict],
                      best: dict | None = None) -> None:
    """Into a sweep's parent run: `sweep/*` metrics, its tags, `sweep.json` and its end time."""
    failed = [j for j in jobs if j["status"] != "finished"]
    values = {"sweep/jobs": len(jobs), "sweep/jobs_finished": len(jobs) - len(failed),
              "sweep/jobs_failed": len(failed)}
    tags = {}
    if failed:
        tags["failed_overrides"] = clip(" | ".join(" ".join(j["overrides"]) for j in failed))
    if best and isinstance(best.get("best_value"), (int, float)):
        values["sweep/best_objective"] = float(best["best_value"])
        tags["best_overrides"] = clip(" ".join(f"{k}={v}" for k, v in
                                               best.get("best_params", {}).items()))
    now, client = int(time.time() * 1000), MlflowClient(tracking_uri)
    client.log_batch(run_id, metrics=[Metric(k, float(v), now, 0) for k, v in values.items()],
                     tags=[RunTag(k, v) for k, v in tags.items()])
    client.log_dict(run_id, {"jobs": jobs, **({"best": best} if best else {})}, "sweep.json")
    client.set_terminated(run_id, "FINISHED", end_time=now)


class SweepSummary(Callback):
    """The sweep's name (its parent runs') in its folder at the start, the summary at the end."""

    def on_multirun_start(self, config, **kwargs) -> None:
        """Its name: `sweep 2026-11-21_13-00-00 (optuna): arm=zero_shot,lora seed=0,1`, the
        folder, the optimising sweeper and the swept overrides (the others: its parent's tag)."""
        folder, overrides = Path(config.hydra.sweep.dir), list(config.hydra.overrides.task)
        for old in (folder / JOBS_DIR).glob("*.json"):
            old.unlink()  # a reused sweep dir: count this sweep's jobs only
        sweeper = str(config.hydra.sweeper.get("_target_", "")).lower()
        optimiser = next((name for name in ("optuna", "nevergrad", "ax") if name in sweeper), None)
        head = f"sweep {folder.name}" + (f" ({optimiser})" if optimiser else "")
        swept = " ".join(redact_override(o.input_line) for o in OverridesParser.create()
                         .parse_overrides(overrides) if o.is_sweep_override())  # parsed by Hydra
        folder.mkdir(parents=True, exist_ok=True)
        (folder / SWEEP_FILE).write_text(json.dumps({
            "name": clip(f"{head}: {swept}" if swept else head, 200),
            "overrides": " ".join(redact_override(o) for o in overrides)[:5000]}))

    def on_multirun_end(self, config, **kwargs) -> None:
        folder = Path(config.hydra.sweep.dir)
        jobs = sorted((json.loads(p.read_text()) for p in (folder / JOBS_DIR).glob("*.json")),
                      key=lambda r: r["num"])
        parents = sorted({j["parent_run_id"] for j in jobs if j.get("parent_run_id")})
        best = optimisation_result(folder) if parents else None
        for parent in parents:  # one per experiment the jobs logged to
            try:
                log_sweep_summary(config.mlflow.tracking_uri, parent, jobs, best)
            except Exception as err:  # noqa: BLE001 - the summary on screen and the exit code stand
                log.error("error: the sweep summary was not logged into run %s: %s", parent,
                          store_problem(err, config.mlflow.tracking_uri) or first_line(err))
        failed = [j for j in jobs if j["status"] != "finished"]
        table = Table(title=f"sweep: {len(jobs) - len(failed)} finished, {len(failed)} failed")
        for column in ("#", "overrides", "status", "test", "error"):
            table.add_column(column, overflow="fold")
        for job in jobs:
            table.add_row(str(job["num"]), " ".join(job["overrides"]),
                          "[green]finished" if job["status"] == "finished" else "[red]failed",
                          "\n".join(f"{k.split('/')[-1]} {v:.4g}"
                                    for k, v in (job.get("results") or {}).items()),
                          job["error"] or "")
        # a log file or a pipe gets a line long enough for an override, not 80 columns
        Console(stderr=True, width=None if sys.stderr.isatty() else 160).print(table)
        if failed:
            raise SystemExit(1)
