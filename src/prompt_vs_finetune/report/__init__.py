"""`pvf-report`: the prompt-vs-fine-tune comparison, computed from the MLflow runs.
The other names load on first use (seconds), so `--help` answers at once; see docs/report.md."""

import argparse
import importlib
import logging
import os
import sys
import tempfile
from functools import partial
from pathlib import Path

_HOME = {**dict.fromkeys(("load_runs", "recorded_runs", "saved_results"), "mlflow_run"),
         **dict.fromkeys(("latest_of_identical", "write_report", "picks"), "write"),
         "recommend": "verdict", "crossover": "verdict",
         **dict.fromkeys(("summarise", "model_scale", "pareto_front", "sensitivity"), "cells")}


def __getattr__(name: str):
    if name not in _HOME:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f".{_HOME[name]}", __name__), name)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="pvf-report", description=__doc__.splitlines()[0])
    parser.add_argument("--tracking-uri", default=None,
                        help="MLflow store (default: MLFLOW_TRACKING_URI or sqlite:///mlflow.db)")
    parser.add_argument("--experiment", action="append", help="experiment (task) name; repeat")
    parser.add_argument("--filter", default="", help="MLflow filter, e.g. \"tags.model = 'gpt2'\"")
    parser.add_argument("--runs-from", type=Path, default=None, help="only the runs recorded "
                        "in metrics.json files under this folder, read from them (no store)")
    parser.add_argument("--out", default="reports", type=Path, help="output folder")
    parser.add_argument("--no-mlflow", action="store_true", help="do not log a summary run")
    parser.add_argument("--volume", type=int, default=None,
                        help="predictions you expect to serve: rank every arm by its total cost")
    args = parser.parse_args(argv)
    os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")  # its INFO lines: not the report's
    from .mlflow_run import load_runs, log_report_run, recorded_runs, saved_results  # not --help
    from .write import write_report
    if problem := _argument_error(args):
        print(f"error: {problem}", file=sys.stderr)
        sys.exit(2)
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    logging.getLogger("mlflow").setLevel(os.environ["MLFLOW_LOGGING_LEVEL"])  # imported earlier
    uri = args.tracking_uri or os.environ.get("MLFLOW_TRACKING_URI", "sqlite:///mlflow.db")
    saved = saved_results(args.runs_from) if args.runs_from else []
    if args.runs_from and all("run" in r for r in saved) and not (args.experiment or args.filter):
        runs = recorded_runs(saved)
    else:  # from the store: every run, the files' (of an older pvf: no record), or a selection
        runs = load_runs(uri, args.experiment, args.filter,
                         {record["run_id"] for record in saved} if args.runs_from else None)
    if runs.empty:
        raise SystemExit(f"error: no finished pvf runs in {uri}; run pvf first or fix --experiment")
    summary = write_atomically(args.out, partial(write_report, runs, volume=args.volume))
    if not args.no_mlflow:
        log_report_run(uri, args.out, runs, summary)
    print((args.out / "report.md").read_text())


def _argument_error(args) -> str | None:
    """What is wrong with the arguments, in one line, before any run is read or file written."""
    if args.out.exists() and not args.out.is_dir():
        return f"--out {args.out} is a file; name a folder (a report is several files)"
    if args.runs_from and not args.runs_from.is_dir():
        return (f"--runs-from {args.runs_from} is not a folder; name the folder of the study's "
                "results (its metrics.json files)")
    if args.volume is not None and args.volume < 1:
        return f"--volume {args.volume}: give 1 or more predictions"
    if args.filter:
        from mlflow.exceptions import MlflowException
        from mlflow.utils.search_utils import SearchUtils
        try:
            SearchUtils.parse_search_filter(args.filter)
        except MlflowException as err:
            return (f"--filter {args.filter!r} is not an MLflow filter ({err.message}); e.g. "
                    "\"tags.model = 'gpt2'\"")
    return None


def write_atomically(out: Path, write):
    """`write(folder)` into a new folder that then replaces `out`: a report stopped halfway
    (Ctrl-C, a full disk) leaves the previous one whole."""
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f".{out.name}.", dir=out.parent) as folder:
        new = Path(folder, "new")
        new.mkdir()  # with the umask's permissions, as `out` would have
        result = write(new)
        if out.exists():
            out.rename(Path(folder, "old"))  # deleted with the folder
        new.rename(out)
    return result
