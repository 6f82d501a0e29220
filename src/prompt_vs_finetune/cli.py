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
    _quiet_libraries()
    from .run import run  # heavy imports after Hydra has parsed the command line

    try:
        results = run(cfg)
    except UserError as err:
        if cfg.get("verbose"):
            raise
        logging.getLogger("pvf").error("error: %s", err)
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)
    return results.get(cfg.objective)  # the value an optimising sweeper (Optuna) minimises


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
