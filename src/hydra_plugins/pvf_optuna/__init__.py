"""pvf's Optuna sweeper (`hydra/sweeper=_optuna`), a Hydra plugin because Hydra instantiates
sweepers only from the `hydra_plugins` namespace. It is Optuna's sweeper, except that a study
whose every trial failed ends like any sweep with failed jobs (the summary table, the parent
run's record, exit 1), not with Optuna's "No trials are completed yet" traceback, which also
skipped the summary. Optuna is imported when a sweep uses it: the plugin scan that imports this
module on every run must not need the `sweeps` extra."""

import logging

from hydra.plugins.sweeper import Sweeper

log = logging.getLogger(__name__)
NO_TRIAL_DONE = "No trials are completed yet"


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
            if NO_TRIAL_DONE not in str(err):
                raise
            log.error("every trial failed, so the study has no best parameters (no "
                      "optimization_results.yaml); the table below gives each trial's error")
            return None
