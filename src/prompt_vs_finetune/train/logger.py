"""Lightning's MLflow logger, writing into the run the job owns (tracking/runs.py)."""

from lightning.pytorch.loggers import MLFlowLogger


class JobMLFlowLogger(MLFlowLogger):
    """MLFlowLogger that writes into the job's run and leaves its status to the job, and logs
    a (metric, step) once: the resume checkpoint flushes a step's metrics before Lightning
    itself logs them (train/resume.py)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._logged: set[tuple[str, int | None]] = set()

    def log_metrics(self, metrics, step=None) -> None:
        fresh = {k: v for k, v in metrics.items() if (k, step) not in self._logged}
        self._logged.update((k, step) for k in fresh)
        if fresh:
            super().log_metrics(fresh, step)

    def log_hyperparams(self, params) -> None:  # the job logs the flattened config itself
        pass

    def finalize(self, status: str = "success") -> None:
        pass


def lightning_logger(run, tracking_uri: str) -> JobMLFlowLogger | bool:
    """The logger of the job's MLflow `run`; none (False) without a run (DDP ranks above 0)."""
    if run is None:
        return False
    return JobMLFlowLogger(tracking_uri=tracking_uri, run_id=run.info.run_id)
