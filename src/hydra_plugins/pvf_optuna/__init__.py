"""pvf's Optuna sweeper (`hydra/sweeper=_optuna`): a study whose every trial failed ends like
any sweep with failed jobs (summary, parent run, exit 1), not in Optuna's traceback. Optuna is
imported when a sweep uses it: Hydra's plugin scan on every run must not need it."""

import logging

from hydra.plugins.sweeper import Sweeper

log = logging.getLogger(__name__)


class OptunaSweeper(Sweeper):
    def __init__(self, **settings) -> None:
        from hydra_plugins.hydra_optuna_sweeper.optuna_sweeper import OptunaSweeper as Optuna

        self.optuna = Optuna(**settings)

    def setup(self, **kwargs) -> None:
        self.optuna.setup(**kwargs)

    def sweep(self, arguments: list[str]) -> None:
        try:
            return self.optuna.sweep(arguments)
        except ValueError as err:
            if "No trials are completed yet" not in str(err):  # Optuna's words
                raise
            log.error("every trial failed, so the study has no best parameters (no "
                      "optimization_results.yaml); the table below gives each trial's error")
