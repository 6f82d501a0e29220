"""The project folder (docs/configuration.md: Which `conf/` runs): the config `pvf` composes
and what relative data paths are relative to; `pvf-init`; atomic writes."""

import os
import re
import shutil
import sys
from importlib.resources import files
from pathlib import Path

from .errors import UserError

_PLAIN_NAME = re.compile(r"^[\w][\w.+-]*$")


def project_dir() -> Path | None:
    """The folder whose conf/ `pvf` composes from, or None (the shipped configs)."""
    if named := os.environ.get("PVF_PROJECT"):
        return Path(named).resolve()
    here = Path.cwd().resolve()
    return next((d for d in (here, *here.parents) if (d / "conf" / "config.yaml").is_file()),
                None)


def project_error() -> str | None:
    """A PVF_PROJECT naming no project (Hydra says only "Primary config directory not found")."""
    named = os.environ.get("PVF_PROJECT")
    if named and not (Path(named) / "conf" / "config.yaml").is_file():
        return (f"PVF_PROJECT={named} holds no conf/config.yaml; run `pvf-init {named}` to "
                "make it a project, or unset PVF_PROJECT")
    return None


def shipped_config_dir() -> Path:
    """conf/ inside an installed wheel, else the repository's (an editable install)."""
    wheel = Path(__file__).parent / "conf"
    return wheel if wheel.is_dir() else Path(__file__).parents[2] / "conf"


def config_dir() -> str:
    project = project_dir()
    return str(project / "conf" if project else shipped_config_dir())


def data_path(path: str, key: str) -> str:
    """A data file as the loader opens it: `pkg://` resolved, a relative path under the project."""
    text = str(path)
    if text.startswith("pkg://"):
        package, _, inside = text.removeprefix("pkg://").partition("/")
        try:
            return str(files(package) / inside)
        except ModuleNotFoundError as err:
            raise UserError(f"{key}={text!r} names package '{package}', which is not "
                            "installed; fix the path") from err
    if "://" in text or Path(text).is_absolute():
        return text
    return str((project_dir() or Path.cwd()) / text)


def init(argv: list[str] | None = None) -> None:
    """`pvf-init [DIR]`: copy the shipped configs to DIR/conf (default: here), a project."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) > 1 or any(a.startswith("-") for a in args):
        print("usage: pvf-init [DIR]   (copies the shipped conf/ to DIR/conf)", file=sys.stderr)
        sys.exit(2)
    target = Path(args[0] if args else ".").resolve() / "conf"
    if target.exists():
        print(f"error: {target} exists; pvf already composes from it (remove it to start "
              "afresh)", file=sys.stderr)
        sys.exit(2)
    shutil.copytree(shipped_config_dir(), target,
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    print(f"wrote {target}: pvf run in {target.parent} now composes from it. Add your own "
          f"task as {target / 'task' / 'mine.yaml'} (docs/configuration.md: Your own task).")


def compose_options(overrides: list[str]):
    """The config `pvf` composes with these options (["arm=lora"]): in a running job through
    Hydra's own search path (a user's --config-dir included), elsewhere the project's conf/."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.hydra_config import HydraConfig

    if GlobalHydra.instance().is_initialized():
        name = HydraConfig.get().job.config_name if HydraConfig.initialized() else "config"
        return compose(config_name=name, overrides=overrides)
    with initialize_config_dir(config_dir(), version_base="1.3"):
        return compose(config_name="config", overrides=overrides)


def name_error(task: str | None, arm: str | None, model: str | None) -> str | None:
    """A task, arm or model name that is not plain: it names an output folder `../x` would leave."""
    for group, value in (("task", task), ("arm", arm), ("model", model)):
        if value is not None and not _PLAIN_NAME.match(str(value)):
            return (f"{group}.name={value!r} is not a plain name (letters, digits, _ . + -); "
                    "it names an output folder: rename it")
    return None


def write_atomic(path: Path, text: str) -> None:
    """Write a file whole or not at all (a temporary file beside it, renamed over it)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.tmp{os.getpid()}")
    try:
        tmp.write_text(text)
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)
