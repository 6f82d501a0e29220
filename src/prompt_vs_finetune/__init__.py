"""prompt-vs-finetune: measured evidence for prompting vs fine-tuning a causal LM."""

from importlib.resources import files
from pathlib import Path

from omegaconf import OmegaConf

__version__ = "0.1.0"

RESOURCES = files(__package__) / "resources"


def resource_path(relative: str) -> str:
    """Absolute path of a file shipped in the package (sample datasets), for task YAMLs."""
    return str(RESOURCES / relative)


# `${pvf_resource:datasets/...}`: the older way a config named a shipped file (task files now
# write pkg://prompt_vs_finetune/resources/datasets/..., plain YAML that DVC can edit).
if not OmegaConf.has_resolver("pvf_resource"):
    OmegaConf.register_new_resolver("pvf_resource", resource_path)


def home() -> str:
    """The user's home folder, from the password database when HOME is unset (a cron job, a
    bare container): `${oc.env:HOME}` was an interpolation error at every command."""
    return str(Path.home())


if not OmegaConf.has_resolver("pvf_home"):
    OmegaConf.register_new_resolver("pvf_home", home)
