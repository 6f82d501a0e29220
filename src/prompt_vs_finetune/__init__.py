"""prompt-vs-finetune: measured evidence for prompting vs fine-tuning a causal LM."""

from importlib.resources import files
from pathlib import Path

from omegaconf import OmegaConf

__version__ = "0.1.0"

# `${pvf_resource:datasets/...}`: how older configs named a shipped file (now pkg://...)
OmegaConf.register_new_resolver(
    "pvf_resource", lambda relative: str(files(__package__) / "resources" / relative), replace=True)
# `${pvf_home:}`: the home folder even where HOME is unset (cron, a bare container), unlike oc.env
OmegaConf.register_new_resolver("pvf_home", lambda: str(Path.home()), replace=True)
