"""Secrets never reach the tracking store or a run's files: `redact` makes them ***."""

import logging
import re
from pathlib import Path

from hydra.core.hydra_config import HydraConfig
from hydra.experimental.callback import Callback
from omegaconf import OmegaConf

from ..project import write_atomic

_SECRET_WORD = r"api[_-]?key|token|secret|password|passwd|credentials?"
_SECRET_KEY = re.compile(rf"(^|[_-])({_SECRET_WORD})$", re.I)
_URI_PASSWORD = re.compile(r"(?P<head>[a-zA-Z][\w+.-]*://[^/\s:@]+:)[^/\s@]+(?P<tail>@)")
_QUERY_SECRET = re.compile(r"(?P<head>[?&](?:api[_-]?key|key|token|access_token|secret|"
                           r"password|sig|signature)=)[^&#\s]+", re.I)
# an override (`+model.api.api_key=sk-...`), as overrides.yaml and hydra.yaml hold them
_OVERRIDE_SECRET = re.compile(rf"(?P<head>(?:^|(?<=[\s,\[]))[+~]*(?:[\w.-]*[._-])?"
                              rf"(?:{_SECRET_WORD})=)[^,\s\]]+", re.I)
REDACTED = "***"


def redact(value):
    """`value` (a config, a list, a string) with its secrets replaced by ***, at any depth."""
    if isinstance(value, dict):
        return {k: REDACTED if _SECRET_KEY.search(str(k)) and v not in (None, "") else redact(v)
                for k, v in value.items()}
    if isinstance(value, list):
        return [redact(v) for v in value]
    if isinstance(value, str):
        value = _URI_PASSWORD.sub(rf"\g<head>{REDACTED}\g<tail>", value)
        value = _OVERRIDE_SECRET.sub(rf"\g<head>{REDACTED}", value)
        return _QUERY_SECRET.sub(rf"\g<head>{REDACTED}", value)
    return value


def redact_override(override: str) -> str:
    """`key=value` from the command line with the value redacted as the config's would be."""
    key, eq, value = override.partition("=")
    if not eq:
        return redact(override)
    leaf = key.lstrip("+~").split(".")[-1]
    return f"{key}={redact({leaf: value})[leaf]}"


def leaves(node, path: str = "", into: tuple[type, ...] = (dict, list)):
    """(dotted path, text) of each leaf of a config, through `into`; `{}` is a leaf."""
    if isinstance(node, into) and node:
        for key, value in node.items() if isinstance(node, dict) else enumerate(node):
            yield from leaves(value, f"{path}.{key}" if path else str(key), into)
    else:
        yield path, str(node)


def leaked_secret(values: dict, environ: dict) -> str | None:
    """Which value (of a config, or an override) holds a secret environment variable's value
    (`${oc.env:OPENAI_API_KEY}` in a label: sent in prompts, written anywhere)."""
    secrets = {name: value for name, value in environ.items()
               if re.search(_SECRET_WORD, name, re.I) and len(value) >= 8}
    return next((f"{path} holds the value of ${name}; a secret is read from the environment "
                 "where it is used, never through a config value: remove the interpolation, "
                 "or the value" for path, text in leaves(values)
                 for name, value in secrets.items() if value in text), None)


def _redact_record(record: logging.LogRecord) -> bool:
    if (clean := redact(message := record.getMessage())) != message:
        record.msg, record.args = clean, ()
    return True


# loggers that print a job's overrides (Hydra's launchers list each job's)
_OVERRIDE_LOGGERS = ("hydra._internal.core_plugins.basic_launcher",
                     "hydra_plugins.hydra_joblib_launcher._core",
                     "hydra_plugins.hydra_submitit_launcher.submitit_launcher",
                     "hydra._internal.utils", "hydra.core.utils")


class RedactHydraFiles(Callback):
    """Hydra's config and overrides files (`.hydra/*.yaml`, multirun.yaml), rewritten redacted as
    the job starts, each whole (a sweep's jobs share multirun.yaml), and its log lines."""

    def on_run_start(self, config, **kwargs) -> None:
        # a filter on a logger survives Hydra reconfiguring the handlers; each is added once
        for each in (*map(logging.getLogger, _OVERRIDE_LOGGERS), *logging.getLogger().handlers):
            each.addFilter(_redact_record)

    on_multirun_start = on_run_start

    def on_job_start(self, config, **kwargs) -> None:
        hydra, files = HydraConfig.get(), []
        if hydra.output_subdir is not None:
            files += (Path(hydra.runtime.output_dir) / hydra.output_subdir).glob("*.yaml")
        if hydra.mode is not None and hydra.mode.name == "MULTIRUN":
            files.append(Path(hydra.sweep.dir) / "multirun.yaml")
        for path in files:
            if path.is_file():
                raw = OmegaConf.to_container(OmegaConf.load(path), resolve=False)
                write_atomic(path, OmegaConf.to_yaml(OmegaConf.create(redact(raw))))
        self.on_run_start(config)  # the job's own log handlers, which Hydra has just configured
