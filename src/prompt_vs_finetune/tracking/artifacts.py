"""What a run leaves in MLflow besides metrics: the datasets it used (its inputs: MLflow's
Dataset column), the predictions (predictions.csv, and predictions.json as an MLflow table to
compare runs by), the confusion matrix (classification) or a few outputs to read
(generation), and the fitted model. One layout for every backend."""

import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import mlflow  # noqa: E402
import pandas as pd  # noqa: E402
from sklearn.metrics import ConfusionMatrixDisplay  # noqa: E402

UNPARSED = "<unparsed>"  # a reply that named no label: a prediction, never a class
# how each split served the arm, as the dataset's context in MLflow
CONTEXTS = {"train": "training", "validation": "validation", "test": "test", "demos": "demos"}
MODEL_NAME = "model"  # the logged model's name in the run (MLflow 3: a LoggedModel)


def split_source(cfg, role: str):
    """Where a split's rows came from, as an MLflow dataset source: the prepared file
    (`data_dir`), the task's data file, or the Hub dataset and split. A validation split carved
    from train (the task has none) comes from train's file; the demonstrations are train's."""
    from mlflow.data.dataset_source_registry import get_dataset_source_from_json as local
    from mlflow.data.dataset_source_registry import resolve_dataset_source
    from mlflow.data.huggingface_dataset_source import HuggingFaceDatasetSource

    from ..project import data_path

    splits = cfg.task.splits
    carved = role == "demos" or (role == "validation" and splits.validation is None)
    origin = "train" if carved else role
    if cfg.data_dir:  # pvf-prepare wrote the source's splits as <role>.jsonl
        path = str(Path(cfg.data_dir).resolve() / f"{origin}.jsonl")
    elif cfg.task.data_files:
        name = splits[origin]
        path = data_path(cfg.task.data_files[name], f"task.data_files.{name}")
    else:
        return HuggingFaceDatasetSource(path=cfg.task.hub, config_name=cfg.task.hub_config,
                                        split=splits[origin])
    if "://" in path:  # a URL or hf:// path the loader opened as it is
        try:
            return resolve_dataset_source(path)
        except Exception:  # noqa: BLE001 - a scheme MLflow has no source for: keep the URI
            pass
    return local(json.dumps({"uri": path}), "local")


def log_datasets(cfg, splits, demos: list[dict], digests: dict[str, str]) -> None:
    """The datasets the arm used, as the run's inputs `<task>/<split>`, with the `data.*_sha256`
    params as digests: `train` and `validation` for an arm that trains, the demonstrations
    shown (not their pool) as `demos`, and `test`."""
    import datasets
    from mlflow.data.huggingface_dataset import from_huggingface

    used = {"test": splits["test"]}
    if cfg.arm.fit:
        used = {"train": splits["train"], "validation": splits["validation"], **used}
    if demos:
        used = {"demos": datasets.Dataset.from_list(demos), **used}
    inputs = []
    for role, split in used.items():
        target = next((c for c in ("label", "references") if c in split.column_names), None)
        inputs.append(from_huggingface(split, targets=target, name=f"{cfg.task.name}/{role}",
                                       digest=digests[role], source=split_source(cfg, role)))
    mlflow.log_inputs(datasets=inputs, contexts=[CONTEXTS[role] for role in used],
                      tags_list=[None] * len(inputs))


def _log_predictions(table: pd.DataFrame) -> None:
    mlflow.log_text(table.to_csv(index=False), "predictions.csv")
    mlflow.log_table(table, "predictions.json")  # the run page's and compare view's table


def log_classification(label_names: list[str], texts: list[str], rows: list[dict],
                       title: str) -> None:
    """predictions.csv: text, gold, predicted (`<unparsed>` where a reply named no label) and
    whatever else the backend recorded per example; and its confusion_matrix.png."""
    names = [*label_names, UNPARSED]
    table = pd.DataFrame({
        "text": [texts[r["index"]] for r in rows],
        "gold": [label_names[r["label"]] for r in rows],
        "predicted": [names[-1 if r["predicted"] is None else r["predicted"]] for r in rows],
    })
    for extra in ("score", "gold_logprob", "reply"):
        if extra in rows[0]:
            table[extra] = [r[extra] for r in rows]
    _log_predictions(table)
    shown = [*label_names, *([UNPARSED] if (table["predicted"] == UNPARSED).any() else [])]
    size = max(6.0, 0.18 * len(shown) + 4)
    fig, ax = plt.subplots(figsize=(size, size))
    ConfusionMatrixDisplay.from_predictions(
        table["gold"], table["predicted"], labels=shown, ax=ax, colorbar=False,
        include_values=len(shown) <= 20, xticks_rotation="vertical")
    ax.set_title(title)
    fig.tight_layout()
    mlflow.log_figure(fig, "confusion_matrix.png")
    plt.close(fig)


def log_generation(texts: list[str], rows: list[dict], title: str, n_samples: int = 5) -> None:
    """predictions.csv (input, references, generated) and samples.md, a few outputs to read."""
    _log_predictions(pd.DataFrame({
        "input": [texts[r["index"]] for r in rows],
        "references": [" ||| ".join(r["references"]) for r in rows],
        "generated": [r["generated"] for r in rows],
        "generated_tokens": [r["generated_tokens"] for r in rows],
    }))
    lines = [f"# {title}", ""]
    for r in rows[:n_samples]:
        lines += [f"## Example {r['index']}", "", "**Input**", "",
                  "> " + texts[r["index"]].replace("\n", "\n> "), "",
                  "**Reference**: " + r["references"][0], "",
                  "**Generated**: " + (r["generated"] or "*(empty)*"), ""]
    mlflow.log_text("\n".join(lines), "samples.md")


def log_fitted_model(model, tokenizer, cfg) -> str:
    """The fine-tuned model as an MLflow text-generation pipeline, to register and serve: the
    whole model, or a LoRA adapter with its base model referenced (its Hub name, or its local
    folder, which must still be there to load it); with the tokenizer. Offline-safe: the model
    card is written here, and the requirements pinned from what is installed. Its URI."""
    from importlib.metadata import PackageNotFoundError, version

    from huggingface_hub import ModelCard

    from .naming import run_name, variant_name

    peft = hasattr(model, "peft_config")
    base = model.peft_config["default"].base_model_name_or_path if peft \
        else str(cfg.model.name_or_path or model.name_or_path)
    requirements = []
    for package in ("torch", "transformers", "accelerate", *(["peft"] if peft else [])):
        try:
            requirements.append(f"{package}=={version(package)}")
        except PackageNotFoundError:
            pass
    card = ModelCard("\n".join([
        "---", "library_name: transformers",
        f"tags: [prompt-vs-finetune, {cfg.arm.name}{', peft' if peft else ''}]", "---", "",
        f"# {cfg.task.name}: {variant_name(cfg)}", "",
        f"`{cfg.arm.name}` of `{base}` on the task `{cfg.task.name}` by prompt-vs-finetune "
        f"(run `{run_name(cfg)}`; the run's params and config.yaml hold the whole config).",
        "", "Prompt template:", "", "```", str(cfg.task.template), "```", ""]))
    extra = {"base_model_path": base} if peft and Path(base).is_dir() else {}
    info = mlflow.transformers.log_model(
        {"model": model, "tokenizer": tokenizer}, name=MODEL_NAME, task="text-generation",
        model_card=card, pip_requirements=requirements,
        torch_dtype=next(model.parameters()).dtype, **extra)
    return info.model_uri
