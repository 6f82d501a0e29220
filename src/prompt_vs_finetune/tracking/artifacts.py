"""What a run leaves in MLflow besides metrics and its prediction files (its task type writes
those): the datasets it used (MLflow's Dataset column) and the fitted model."""

import json
from pathlib import Path

import mlflow

# how each split served the arm, as the dataset's context in MLflow
CONTEXTS = {"train": "training", "validation": "validation", "test": "test", "demos": "demos"}
MODEL_NAME = "model"  # the logged model's name in the run (MLflow 3: a LoggedModel)


def split_source(task, data_dir: str | None, role: str):
    """Where a split's rows came from, as an MLflow dataset source: the prepared file
    (`data_dir`), the task's data file, or the Hub dataset and split. A validation split carved
    from train (the task has none) comes from train's file; the demonstrations are train's."""
    from mlflow.data.dataset_source_registry import get_dataset_source_from_json as local
    from mlflow.data.dataset_source_registry import resolve_dataset_source
    from mlflow.data.huggingface_dataset_source import HuggingFaceDatasetSource

    from ..project import data_path

    splits = task.splits
    carved = role == "demos" or (role == "validation" and splits.validation is None)
    origin = "train" if carved else role
    if data_dir:  # pvf-prepare wrote the source's splits as <role>.jsonl
        path = str(Path(data_dir).resolve() / f"{origin}.jsonl")
    elif task.data_files:
        name = splits[origin]
        path = data_path(task.data_files[name], f"task.data_files.{name}")
    else:
        return HuggingFaceDatasetSource(path=task.hub, config_name=task.hub_config,
                                        split=splits[origin])
    if "://" in path:  # a URL or hf:// path the loader opened as it is
        try:
            return resolve_dataset_source(path)
        except Exception:  # noqa: BLE001 - a scheme MLflow has no source for: keep the URI
            pass
    return local(json.dumps({"uri": path}), "local")


def log_datasets(task, data_dir: str | None, fit: bool, splits, demos: list[dict],
                 digests: dict[str, str]) -> None:
    """The datasets the arm used (train and validation when it fits, the demonstrations shown,
    test) as the run's inputs `<task>/<split>`, the `data.*_sha256` params as digests."""
    import datasets
    from mlflow.data.huggingface_dataset import from_huggingface

    used = {"test": splits["test"]}
    if fit:
        used = {"train": splits["train"], "validation": splits["validation"], **used}
    if demos:
        used = {"demos": datasets.Dataset.from_list(demos), **used}
    inputs = []
    for role, split in used.items():
        target = next((c for c in ("label", "references") if c in split.column_names), None)
        inputs.append(from_huggingface(split, targets=target, name=f"{task.name}/{role}",
                                       digest=digests[role],
                                       source=split_source(task, data_dir, role)))
    mlflow.log_inputs(datasets=inputs, contexts=[CONTEXTS[role] for role in used],
                      tags_list=[None] * len(inputs))


def log_fitted_model(model, tokenizer, arm: str, task, base_path: str | None) -> str:
    """The fine-tuned model, or a LoRA adapter with its base model referenced (a local
    `base_path` must still be there to load it), and the tokenizer, into the active run as a
    text-generation pipeline; offline (the card written here, requirements as installed)."""
    from importlib.metadata import PackageNotFoundError, version

    from huggingface_hub import ModelCard

    peft = hasattr(model, "peft_config")
    base = model.peft_config["default"].base_model_name_or_path if peft \
        else str(base_path or model.name_or_path)
    requirements = []
    for package in ("torch", "transformers", "accelerate", *(["peft"] if peft else [])):
        try:
            requirements.append(f"{package}=={version(package)}")
        except PackageNotFoundError:
            pass
    run = mlflow.active_run()
    variant = run.data.tags["variant"].rpartition(" #")[0]  # naming.job_record's
    card = ModelCard("\n".join([
        "---", "library_name: transformers",
        f"tags: [prompt-vs-finetune, {arm}{', peft' if peft else ''}]", "---", "",
        f"# {task.name}: {variant}", "",
        f"`{arm}` of `{base}` on the task `{task.name}` by prompt-vs-finetune "
        f"(run `{run.info.run_name}`; the run's params and config.yaml hold the whole config).",
        "", "Prompt template:", "", "```", str(task.template), "```", ""]))
    extra = {"base_model_path": base} if peft and Path(base).is_dir() else {}
    info = mlflow.transformers.log_model(
        {"model": model, "tokenizer": tokenizer}, name=MODEL_NAME, task="text-generation",
        model_card=card, pip_requirements=requirements,
        torch_dtype=next(model.parameters()).dtype, **extra)
    return info.model_uri
