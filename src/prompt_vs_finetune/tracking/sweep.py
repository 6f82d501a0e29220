"""Sweeps that lose nothing: a failed job is recorded and the sweep goes on; at the end, one
screen says what finished and what failed (by override), and the exit code is non-zero when
anything failed.

Each job writes its outcome to `<sweep dir>/.pvf_jobs/<job number>.json` (this works in any
launcher's worker process); the `SweepSummary` Hydra callback reads them in the parent.
"""

import json
import logging
from pathlib import Path

from hydra.core.hydra_config import HydraConfig
from hydra.experimental.callback import Callback
from hydra.types import RunMode
from rich.console import Console
from rich.table import Table

JOBS_DIR = ".pvf_jobs"
log = logging.getLogger(__name__)


def in_multirun() -> bool:
    return HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN


def record_job(error: str | None = None) -> None:
    """Write this job's outcome for the sweep summary (no-op outside a multirun)."""
    if not in_multirun():
        return
    hydra = HydraConfig.get()
    folder = Path(hydra.sweep.dir) / JOBS_DIR
    folder.mkdir(parents=True, exist_ok=True)
    record = {"num": hydra.job.num, "overrides": list(hydra.overrides.task),
              "status": "failed" if error else "finished", "error": error}
    (folder / f"{hydra.job.num}.json").write_text(json.dumps(record))


def read_jobs(sweep_dir: Path) -> list[dict]:
    folder = Path(sweep_dir) / JOBS_DIR
    return sorted((json.loads(p.read_text()) for p in folder.glob("*.json")),
                  key=lambda r: r["num"])


class SweepSummary(Callback):
    """Prints finished / failed per job after a multirun; exits 1 when any job failed."""

    def on_multirun_start(self, config, **kwargs) -> None:
        for old in (Path(config.hydra.sweep.dir) / JOBS_DIR).glob("*.json"):
            old.unlink()  # a reused sweep dir: count this sweep's jobs only

    def on_multirun_end(self, config, **kwargs) -> None:
        jobs = read_jobs(Path(config.hydra.sweep.dir))
        failed = [j for j in jobs if j["status"] != "finished"]
        table = Table(title=f"sweep: {len(jobs) - len(failed)} finished, {len(failed)} failed")
        for column in ("#", "overrides", "status", "error"):
            table.add_column(column, overflow="fold")
        for job in jobs:
            table.add_row(str(job["num"]), " ".join(job["overrides"]),
                          "[green]finished" if job["status"] == "finished" else "[red]failed",
                          job["error"] or "")
        Console(stderr=True).print(table)
        if failed:
            raise SystemExit(1)
