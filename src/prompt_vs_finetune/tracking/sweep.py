"""Sweeps that lose nothing: a failed job is recorded and the sweep goes on; at the end, one
screen says what finished and what failed (by override), and the exit code is non-zero when
anything failed.

Each job writes its outcome to `<sweep dir>/.pvf_jobs/<job number>.json` (this works in any
launcher's worker process); the `SweepSummary` Hydra callback reads them in the parent, and
logs the summary into the sweep's MLflow parent runs (tracking/parents.py).
"""

import json
import logging
import sys
from pathlib import Path

from hydra.core.hydra_config import HydraConfig
from hydra.experimental.callback import Callback
from rich.console import Console
from rich.table import Table

from .naming import in_multirun, redact_override
from .parents import SWEEP_FILE, log_sweep_summary, sweep_name
from .secrets import redact

JOBS_DIR = ".pvf_jobs"
OPTIMISATION_FILE = "optimization_results.yaml"  # an optimising sweeper's best (Optuna's)
log = logging.getLogger(__name__)
_job_run: dict[str, str | None] = {}  # this process's current job: its run and parent run


def note_run(run_id: str, parent_run_id: str | None) -> None:
    """The job's MLflow run and its parent, for the job's record (tracking/runs.py calls it)."""
    _job_run.clear()
    _job_run.update(run_id=run_id, parent_run_id=parent_run_id)


HEADLINE = ("test/accuracy", "test/rougeL", "cost/usd_per_1k_predictions")  # shown per job


def record_job(error: str | None = None, results: dict[str, float] | None = None) -> None:
    """Write this job's outcome (and its headline numbers) for the sweep summary (no-op
    outside a multirun)."""
    if not in_multirun():
        return
    hydra = HydraConfig.get()
    folder = Path(hydra.sweep.dir) / JOBS_DIR
    folder.mkdir(parents=True, exist_ok=True)
    record = {"num": hydra.job.num, "overrides": [redact(o) for o in hydra.overrides.task],
              "status": "failed" if error else "finished", "error": error,
              "results": {k: results[k] for k in HEADLINE if k in (results or {})},
              "run_id": _job_run.get("run_id"), "parent_run_id": _job_run.get("parent_run_id")}
    _job_run.clear()  # the next job in this process starts without a run
    (folder / f"{hydra.job.num}.json").write_text(json.dumps(record))


def read_jobs(sweep_dir: Path) -> list[dict]:
    folder = Path(sweep_dir) / JOBS_DIR
    return sorted((json.loads(p.read_text()) for p in folder.glob("*.json")),
                  key=lambda r: r["num"])


def optimisation_result(sweep_dir: Path) -> dict | None:
    """What an optimising sweeper wrote: `best_params`, `best_value` (Optuna)."""
    path = Path(sweep_dir) / OPTIMISATION_FILE
    if not path.is_file():
        return None
    from omegaconf import OmegaConf

    return OmegaConf.to_container(OmegaConf.load(path), resolve=True)


class SweepSummary(Callback):
    """Prints finished / failed per job after a multirun and logs it into the sweep's MLflow
    parent runs; exits 1 when any job failed. At the start, names the sweep (its parent runs'
    name) in the sweep folder."""

    def on_multirun_start(self, config, **kwargs) -> None:
        for old in (Path(config.hydra.sweep.dir) / JOBS_DIR).glob("*.json"):
            old.unlink()  # a reused sweep dir: count this sweep's jobs only
        sweeper = str(config.hydra.sweeper.get("_target_", "")).lower()
        optimiser = next((name for name in ("optuna", "nevergrad", "ax") if name in sweeper), None)
        folder = Path(config.hydra.sweep.dir)
        folder.mkdir(parents=True, exist_ok=True)
        overrides = list(config.hydra.overrides.task)
        (folder / SWEEP_FILE).write_text(json.dumps({
            "name": sweep_name(str(folder), overrides, optimiser),
            "overrides": " ".join(redact_override(o) for o in overrides)[:5000]}))

    def on_multirun_end(self, config, **kwargs) -> None:
        jobs = read_jobs(Path(config.hydra.sweep.dir))
        self.log_to_parents(config, jobs)
        failed = [j for j in jobs if j["status"] != "finished"]
        table = Table(title=f"sweep: {len(jobs) - len(failed)} finished, {len(failed)} failed")
        for column in ("#", "overrides", "status", "test", "error"):
            table.add_column(column, overflow="fold")
        for job in jobs:
            results = job.get("results") or {}
            table.add_row(str(job["num"]), " ".join(job["overrides"]),
                          "[green]finished" if job["status"] == "finished" else "[red]failed",
                          "\n".join(f"{k.split('/')[-1]} {v:.4g}" for k, v in results.items()),
                          job["error"] or "")
        # a log file or a pipe gets a line long enough for an override, not 80 columns
        Console(stderr=True, width=None if sys.stderr.isatty() else 160).print(table)
        if failed:
            raise SystemExit(1)

    @staticmethod
    def log_to_parents(config, jobs: list[dict]) -> None:
        """The summary into each parent run the jobs nested under (one per experiment)."""
        parents = sorted({j["parent_run_id"] for j in jobs if j.get("parent_run_id")})
        if not parents:
            return
        best = optimisation_result(Path(config.hydra.sweep.dir))
        for parent in parents:
            try:
                log_sweep_summary(config.mlflow.tracking_uri, parent, jobs, best)
            except Exception:  # noqa: BLE001 - the summary on screen and the exit code stand
                log.warning("could not log the sweep summary into run %s", parent,
                            exc_info=True)
