"""prompt-vs-finetune: measured evidence for prompting vs fine-tuning a causal LM."""

from importlib.resources import files

from omegaconf import OmegaConf

__version__ = "0.1.0"

RESOURCES = files(__package__) / "resources"


def resource_path(relative: str) -> str:
    """Absolute path of a file shipped in the package (sample datasets), for task YAMLs."""
    return str(RESOURCES / relative)


# `${pvf_resource:datasets/intent_sample/train.jsonl}` in a config resolves to the shipped file.
if not OmegaConf.has_resolver("pvf_resource"):
    OmegaConf.register_new_resolver("pvf_resource", resource_path)
