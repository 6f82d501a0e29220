"""`pvf`: the Hydra entry point. Thin on purpose: compose the config, run the job."""

import contextlib
import errno
import io
import logging
import math
import os
import re
import sys
import tempfile
import warnings
from pathlib import Path
from typing import NoReturn

import hydra
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import ConfigAttributeError, ConfigKeyError

from .errors import Preempted, UserError, causes
from .project import config_dir, name_error, project_error, shipped_config_dir
from .tracking.secrets import leaked_secret

log = logging.getLogger("pvf")
QUIET = ["lightning.pytorch.utilities.rank_zero", "lightning.pytorch.accelerators.cuda",
         "transformers", "datasets", "httpx", "alembic", "mlflow.store"]


def _quiet_libraries(verbose: bool = False) -> None:
    """The terminal shows pvf's lines; the libraries' INFO lines and warnings with verbose=true."""
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    if not verbose:
        os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")
        warnings.simplefilter("ignore")  # pvf's own warnings are log lines, not these
    for name in QUIET if verbose else [*QUIET, "mlflow"]:
        logging.getLogger(name).setLevel(logging.WARNING)
    # the loaders log a bad file at ERROR before raising; tasks/loading.py says it in one line
    for name in ("datasets.packaged_modules.json.json", "datasets.packaged_modules.csv.csv"):
        logging.getLogger(name).setLevel(logging.CRITICAL)
    import datasets

    datasets.disable_progress_bars()


def main() -> None:
    """`pvf`: the command line checked first (a bad key is one line, no secret reaches .hydra/)."""
    args = sys.argv[1:]
    values = dict(a.lstrip("+~").partition("=")[::2] for a in args)
    if error := project_error() or leaked_secret(values, dict(os.environ)) or \
            config_error(args) or output_error(args):
        _exit(error)
    job()


def config_error(args: list[str]) -> str | None:
    """What is wrong with these overrides (every value of a sweep), in one line, or None."""
    from hydra import compose, initialize_config_dir
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import HydraException, OverrideParseException

    command = read_command(args)
    if command is None or isinstance(command, str):
        return command
    overrides, config_name, search = command
    trials = next((a.split("=", 1)[1] for a in args
                   if a.lstrip("+").startswith("hydra.sweeper.n_trials=")), None)
    if trials is not None and not (trials.isdigit() and int(trials) >= 1):
        return (f"hydra.sweeper.n_trials={trials} runs no trial; give 1 or more (each trial is "
                "one job)")
    if base := next((a for a in overrides if re.match(r"^[\w/]+=_", a)), None):
        group, name = base.split("=", 1)  # conf/<group>/_*.yaml are what the options extend
        return f"{group} '{name}' is a base the {group} options extend, not one of them"
    try:
        parsed = [o for o in OverridesParser.create().parse_overrides(overrides)  # Hydra checks
                  if not o.get_key_element().lstrip("+~").startswith("hydra.")]  # its own keys
        values = [[f"{o.get_key_element()}={v}" for v in o.sweep_string_iterator()]
                  if o.is_sweep_override() else [o.input_line] for o in parsed]
        first = [options[0] for options in values]  # every sweep at its first value, then
        variants = [first, *([*first[:i], other, *first[i + 1:]]  # each other value alone
                             for i, options in enumerate(values) for other in options[1:])]
        with initialize_config_dir(config_dir(), version_base="1.3"):
            defaults = compose(config_name, overrides=search, return_hydra_config=True)
            composed = [compose(config_name, overrides=[*search, *v]) for v in variants]
        if problem := _key_error(parsed, defaults, composed[0]):
            return problem
        for cfg in composed:
            names = (OmegaConf.select(cfg, f"{group}.name") for group in ("task", "arm", "model"))
            if problem := name_error(*names):
                return problem
    except OverrideParseException as err:
        return f"cannot parse the overrides ({str(err).splitlines()[0]}); see " \
               "https://hydra.cc/docs/advanced/override_grammar/basic"
    except HydraException as err:  # a missing option (MissingConfigException) among them
        lines = str(err).splitlines()
        if missing := re.search(r"Could not find '([^/']+)/([^']+)'", str(err)):
            group, name = missing.groups()
            options = [o for o in re.findall(r"^\t(\S+)$", str(err).split("Config search path")[0],
                                             re.M) if not o.startswith("_")]  # not the bases
            return f"unknown {group} '{name}'; choose one of: {', '.join(options)}"
        unknown = re.match(r"Could not override '(.+)'\.", lines[0])
        if unknown and len(lines) > 1:
            return (f"unknown config key '{unknown.group(1)}': check its spelling (`pvf --cfg "
                    f"job` prints every key), or add it with {lines[1].split()[-1]}")
        return lines[0]
    return None


def _key_error(parsed, defaults, composed) -> str | None:
    """A key given twice with different values (unless ++ replaces it), or a +key no group reads."""
    given: dict[str, str] = {}
    for o in parsed:
        key, value = o.get_key_element().lstrip("+~"), o.input_line.partition("=")[2]
        if given.setdefault(key, value) != value and not o.input_line.startswith("++"):
            later = "" if key in defaults.hydra.runtime.choices else \
                f" (a later ++{key}=... replaces the value on purpose)"
            return (f"{key} is given twice, with different values (Hydra would silently "
                    f"keep the last); give it once{later}")
        given[key] = value
        top = key.split(".")[0]
        if o.input_line[0] == "+" and top in composed and top not in (*defaults, "notes"):
            return (f"+{top}: no config group defines the key {top}, so nothing would read "
                    "it; check its spelling (`pvf --cfg job` prints every key), or keep a "
                    f"note of your own as +notes.{top}=...")
    return None


def output_error(args: list[str]) -> str | None:
    """Hydra's run folder (or its nearest existing parent) takes no files: not four tracebacks."""
    multirun = any(a in ("-m", "--multirun") for a in args)
    key = "hydra.sweep.dir" if multirun else "hydra.run.dir"
    given = next((a.split("=", 1)[1] for a in args if a.startswith(f"{key}=")), None)
    folder = Path(given or ("multirun" if multirun else "outputs")).absolute()
    existing = next(p for p in (folder, *folder.parents) if p.exists())
    try:
        tempfile.TemporaryFile(dir=existing).close()
    except OSError as err:
        return (f"cannot write to {existing} (where Hydra puts {key}: {err.strerror}); run "
                f"from a writable folder, or set {key}=<a writable folder>")
    return None


def read_command(args: list[str]) -> tuple[list[str], str, list[str]] | str | None:
    """(overrides, config name, search path override) as Hydra reads them, an error line, or
    None for flags that run nothing (--help) or that Hydra refuses."""
    from hydra._internal.utils import get_args_parser

    with contextlib.redirect_stderr(io.StringIO()):
        try:
            flags = get_args_parser().parse_intermixed_args(args)
        except SystemExit:
            return None
    if flags.help or flags.hydra_help or flags.info or flags.shell_completion:
        return None
    search = [a for a in flags.overrides if a.startswith("hydra.searchpath=")]
    if flags.config_dir:  # Hydra adds --config-dir to the search path: so does the check
        if not Path(flags.config_dir).is_dir():
            return (f"--config-dir {flags.config_dir!r} is not a folder; name the folder that "
                    "holds your config groups (e.g. task/)")
        paths = [f"file://{Path(flags.config_dir).resolve()}"]
        paths += [search[0].split("=", 1)[1].strip("[]")] if search else []
        search = [f"hydra.searchpath=[{','.join(filter(None, paths))}]"]
    overrides = [a for a in flags.overrides if not a.startswith("hydra")]
    return overrides, flags.config_name or "config", search


def missing_key(err: BaseException) -> str | None:
    """One line for a key the code reads that the config lacks: a conf/ older than pvf."""
    if not isinstance(err, (ConfigAttributeError, ConfigKeyError)):
        return None
    key = getattr(err, "full_key", None) or str(err).splitlines()[0]
    return (f"the config has no key {key}: {config_dir()} is older than this pvf, or one of "
            f"its files lost the key; add it as the shipped configs have it "
            f"({shipped_config_dir()})")


def disk_full(err: BaseException) -> str | None:
    """One line for a full disk (or quota), anywhere in the chain of causes."""
    for seen in causes(err):
        full = isinstance(seen, OSError) and seen.errno in (errno.ENOSPC, errno.EDQUOT)
        if full or "database or disk is full" in str(seen):
            # Lightning and MLflow stage files in the temporary folder too
            where = getattr(seen, "filename", None) or (
                f"the working folder, or the temporary folder {tempfile.gettempdir()}")
            return (f"the disk is full (writing {where}); free space, then run the same "
                    "command again (a fine-tuning job resumes)")
    return None


@hydra.main(version_base="1.3", config_path=config_dir(), config_name="config")
def job(cfg: DictConfig) -> float | None:
    """One job: a user error is one `error:` line and exit 2; a sweep records it and goes on."""
    _quiet_libraries(cfg.verbose)
    from .job import run  # heavy imports after Hydra has parsed the command line
    from .tracking.naming import in_multirun
    from .tracking.runs import error_line
    from .tracking.secrets import redact
    from .tracking.store import library_logs_to_file, store_problem
    from .tracking.sweep import record_job

    _quiet_libraries(cfg.verbose)  # MLflow set its own level as it was imported
    library_logs_to_file(cfg.verbose)
    try:
        results = run(cfg)
    except Preempted:  # SIGTERM: the run is KILLED, its resume state kept; 143 = 128 + SIGTERM
        record_job(error="stopped by SIGTERM")
        _exit("stopped by SIGTERM (preempted); the same command resumes this job", 143)
    except Exception as err:  # Ctrl-C (KeyboardInterrupt) stops the whole sweep
        known = str(err) if isinstance(err, UserError) else store_problem(
            err, cfg.mlflow.tracking_uri) or disk_full(err) or missing_key(err)
        message = redact(known or error_line(err))
        record_job(error=message)
        if in_multirun():
            log.error("error: %s", message, exc_info=cfg.verbose or not known)
            return None  # an optimising sweeper records the trial as failed, and goes on
        if not known or cfg.verbose:
            raise
        _exit(message)
    if problem := objective_error(cfg.objective, results):  # the trial failed: so it says
        record_job(error=problem)
        log.error("error: %s", problem)
        return None
    record_job(results=results)
    return results.get(cfg.objective)


def _exit(message: str, code: int = 2) -> NoReturn:
    """`error: message` on stderr and in the job's log file (not again on the terminal)."""
    line = f"error: {message}"
    record = logging.LogRecord("pvf", logging.ERROR, __file__, 0, line, None, None)
    for handler in logging.getLogger().handlers:
        if isinstance(handler, logging.FileHandler):
            handler.handle(record)
    print(line, file=sys.stderr)
    sys.exit(code)


def objective_error(key: str, results: dict[str, float]) -> str | None:
    """Why an optimising sweeper's trial has no objective to minimise (absent, not finite)."""
    from .tracking.naming import hpo_trial

    value = results.get(key)
    if not hpo_trial() or (value is not None and math.isfinite(value)):
        return None  # (outside a study, a job that did not fit has none, rightly)
    if value is not None:
        return f"objective {key} is {value} (did the fit diverge?)"
    fixed = " (a fit on fewer than arm.min_validation examples chooses no checkpoint)"
    logged = ", ".join(k for k in sorted(results) if k.startswith("val/")) or "none"
    return (f"objective={key} is not a metric this job logged{fixed * (key == 'val/best_loss')}"
            f"; its val/ metrics: {logged}")


@hydra.main(version_base="1.3", config_path=config_dir(), config_name="config")
def prepare(cfg: DictConfig) -> None:
    """`pvf-prepare data_dir=DIR task=...`: the task's splits, written to DIR."""
    _quiet_libraries()
    from .config import check_config, fill_inherited
    from .tasks import Task, data_labels, load_splits
    from .tasks.splits import write_splits

    if not cfg.data_dir:
        _exit("pvf-prepare needs data_dir=DIR (where the splits go)")
    try:
        fill_inherited(cfg)
        check_config(cfg)  # the task's keys among them, one line each
        splits, dropped = load_splits(cfg.task)
        Task.from_config(cfg.task, data_labels(splits))  # the labels check, before any file
        write_splits(splits, dropped, Path(cfg.data_dir))
    except UserError as err:
        _exit(str(err))
