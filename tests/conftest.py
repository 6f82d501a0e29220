"""Offline test set-up: no test touches the network, every store lives in a temp dir."""

import os
import tempfile
from importlib.resources import files
from pathlib import Path

# Before transformers / huggingface_hub are imported: never reach for the Hub.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["HF_DATASETS_OFFLINE"] = "1"
os.environ["TOKENIZERS_PARALLELISM"] = "false"
os.environ.setdefault("PVF_CACHE_DIR", tempfile.mkdtemp(prefix="pvf-test-cache-"))
os.environ.pop("MLFLOW_TRACKING_URI", None)
# No system metrics (a sampling thread per run) but where a test turns them on: a run's metric
# keys then do not depend on how long it took.
os.environ["MLFLOW_ENABLE_SYSTEM_METRICS_LOGGING"] = "false"
# Warm workers (warm/: `dvc repro` in test_dvc, the suite's `pvf` jobs, test_warm) exit
# a few minutes after their last job started, so that one outlives the suite's longest
# command (a sweep: a worker counts its idle time from the last job's start, and exits as
# that job ends if it ran longer) and the gaps between the files that run `pvf`: a new
# worker is 8-10 s of imports.
os.environ.setdefault("PVF_WARM_IDLE", "240")
# Under pytest-xdist each worker (and every `pvf` it starts) gets its share of the cores:
# torch's default of one thread per core in each worker oversubscribes them.
if os.environ.get("PYTEST_XDIST_WORKER_COUNT"):
    _cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    _share = max(1, (_cores or 1) // int(os.environ["PYTEST_XDIST_WORKER_COUNT"]))
    os.environ.setdefault("OMP_NUM_THREADS", str(_share))


def _mlflow_store_template() -> None:
    """One empty MLflow store, made once for the whole suite (xdist's workers and every
    process they start inherit PVF_TEST_MLFLOW_TEMPLATE): tests/site/sitecustomize.py makes
    each new store a copy of it rather than running MLflow's migrations again (3-9 s a store
    here). The folder goes on PYTHONPATH, so the `pvf` jobs the tests start copy it too."""
    import atexit
    import shutil
    import sys

    site = str(Path(__file__).parent / "site")
    if site not in os.environ.get("PYTHONPATH", "").split(os.pathsep):
        os.environ["PYTHONPATH"] = os.pathsep.join(
            filter(None, [site, os.environ.get("PYTHONPATH")]))
    if site not in sys.path:
        sys.path.insert(0, site)
    import sitecustomize

    sitecustomize.install()
    if os.environ.get("PVF_TEST_MLFLOW_TEMPLATE"):
        return
    from mlflow.tracking import MlflowClient

    folder = tempfile.mkdtemp(prefix="pvf-test-mlflow-")
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    template = os.path.join(folder, "mlflow.db")
    MlflowClient(f"sqlite:///{template}").search_experiments()  # made by MLflow's migrations
    os.environ["PVF_TEST_MLFLOW_TEMPLATE"] = template


_mlflow_store_template()


def _pristine_project() -> str | None:
    """A project folder whose conf/ is the repository's as committed (git HEAD), for every
    test and every `pvf` a test starts (PVF_PROJECT): what a user edited in the working tree's
    conf/ (`dvc exp run -S` leaves its edit there) does not reach the suite. PVF_TEST_CONF=
    worktree tests the working tree's conf/ instead (while editing the configs); outside a git
    checkout the shipped conf/ is used as it is."""
    import subprocess
    import tarfile

    root = Path(__file__).parents[1]
    if os.environ.get("PVF_TEST_CONF") == "worktree" or not (root / ".git").exists():
        return None
    try:
        archive = subprocess.run(["git", "-C", str(root), "archive", "HEAD", "conf"],
                                 capture_output=True, check=True, timeout=60).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    project = tempfile.mkdtemp(prefix="pvf-test-project-")
    import io

    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(project, filter="data")
    return project


PRISTINE_PROJECT = _pristine_project()
if PRISTINE_PROJECT:
    os.environ["PVF_PROJECT"] = PRISTINE_PROJECT

import pytest  # noqa: E402
import torch  # noqa: E402
from hydra import compose, initialize_config_dir  # noqa: E402
from transformers import GPT2Config, GPT2LMHeadModel  # noqa: E402

from prompt_vs_finetune.cli import config_dir  # noqa: E402
from prompt_vs_finetune.config import fill_inherited  # noqa: E402

INTENT_TRAIN = Path(str(files("prompt_vs_finetune") / "resources/datasets/intent_sample"),
                    "train.jsonl")


# The files that take longest (seconds on 2 cores, 2026-12-06), started first: xdist gives each
# worker a whole file (`--dist loadfile`, so a module-scoped fixture is built once), and a long
# file started last would run on alone.
LONGEST_FIRST = ("test_cli", "test_resume", "test_sweeps", "test_dvc", "test_real_model",
                 "test_ddp", "test_model_family", "test_run", "test_warm", "test_hybrid",
                 "test_faults")


def pytest_collection_modifyitems(items):
    rank = {name: i for i, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.module.__name__.rpartition(".")[2],
                                         len(rank)))  # stable: a file's own order is kept


def compose_config(tmp_path: Path, *overrides: str, return_hydra: bool = False):
    """The `pvf` config as Hydra composes it and a job settles it (config.fill_inherited), with
    outputs and MLflow under tmp_path."""
    with initialize_config_dir(config_dir(), version_base="1.3"):
        cfg = compose("config", return_hydra_config=return_hydra, overrides=[
            f"paths.output_dir={tmp_path / 'out'}",
            f"paths.resume_dir={tmp_path / 'resume'}",
            f"mlflow.tracking_uri=sqlite:///{tmp_path / 'mlflow.db'}",
            *overrides,
        ])
    fill_inherited(cfg)
    return cfg


@pytest.fixture(params=["gpt2", "llama"])
def random_lm(request):
    """A 2-layer causal LM with random weights, in eval mode, for exact checks of the fast
    paths against direct forward passes: GPT-2 (absolute positions, `past_key_values` as
    tuples in old releases, Conv1D projections) and Llama, SmolLM2's architecture (rotary
    positions, grouped key/value heads, tied embeddings, a cache object)."""
    torch.manual_seed(0)
    if request.param == "gpt2":
        config = GPT2Config(vocab_size=97, n_positions=64, n_embd=32, n_layer=2, n_head=2,
                            resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0)
        return GPT2LMHeadModel(config).eval()
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(vocab_size=97, hidden_size=32, intermediate_size=64,
                         num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                         max_position_embeddings=64, tie_word_embeddings=True)
    return LlamaForCausalLM(config).eval()


LORA_TARGETS = {"gpt2": ["c_attn"], "llama": ["q_proj", "v_proj"]}  # what LoRA adapts
