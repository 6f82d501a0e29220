"""`pvf`: the Hydra entry point. Thin on purpose: compose the config, run the job."""

import logging
import os
import sys
from pathlib import Path

import hydra
from omegaconf import DictConfig

from .errors import UserError


def config_dir() -> str:
    """conf/ inside an installed wheel, else the repository's conf/ (editable install)."""
    packaged = Path(__file__).parent / "conf"
    return str(packaged if packaged.is_dir() else Path(__file__).parents[2] / "conf")


def _quiet_libraries() -> None:
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    for name in ("lightning.pytorch.utilities.rank_zero", "lightning.pytorch.accelerators.cuda",
                 "transformers", "datasets", "httpx", "alembic", "mlflow.store"):
        logging.getLogger(name).setLevel(logging.WARNING)
    import datasets

    datasets.disable_progress_bars()


@hydra.main(version_base="1.3", config_path=config_dir(), config_name="config")
def main(cfg: DictConfig) -> float | None:
    """One job. A user error is one `error:` line and exit 2; in a multirun a failed job (its
    MLflow run FAILED, with the error and traceback) is recorded and the sweep goes on."""
    _quiet_libraries()
    from .run import run  # heavy imports after Hydra has parsed the command line
    from .sweep import in_multirun, record_job
    from .tracking import error_line

    log = logging.getLogger("pvf")
    try:
        results = run(cfg)
    except Exception as err:  # Ctrl-C (KeyboardInterrupt) stops the whole sweep
        message = str(err) if isinstance(err, UserError) else error_line(err)
        record_job(error=message)
        if in_multirun():
            log.error("error: %s", message, exc_info=cfg.get("verbose")
                      or not isinstance(err, UserError))
            return float("nan")  # an optimising sweeper counts the trial as failed
        if not isinstance(err, UserError) or cfg.get("verbose"):
            raise
        log.error("error: %s", err)
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)
    record_job()
    return results.get(cfg.objective, float("nan"))  # what an optimising sweeper minimises


@hydra.main(version_base="1.3", config_path=config_dir(), config_name="config")
def prepare(cfg: DictConfig) -> None:
    """`pvf-prepare data_dir=DIR task=...`: load, split by seed, write the splits to DIR."""
    _quiet_libraries()
    from .task import load_splits, write_splits

    if not cfg.get("data_dir"):
        print("error: pvf-prepare needs data_dir=DIR (where the splits go)", file=sys.stderr)
        sys.exit(2)
    try:
        write_splits(load_splits(cfg.task, cfg.seed), Path(cfg.data_dir))
    except UserError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)
