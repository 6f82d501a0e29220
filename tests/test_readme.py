"""The README's commands, run by the tests: every `pvf` command in its bash blocks that runs
offline composes, and its first offline job runs end to end. A command that needs the network
or a key says so in a trailing comment (`# needs the Hub`, `# needs an API key`)."""

import re
import shlex
from pathlib import Path

from prompt_vs_finetune.cli import config_error

from .test_cli import pvf, runs_in
from .test_run import FAST

README = Path(__file__).parents[1] / "README.md"
ONLINE = ("# needs the Hub", "# needs an API key")
SHIPPED_TASKS = {"intent_sample", "summary_sample"}
OFFLINE_MODELS = {"tiny", "smollm2"}


def readme_commands() -> list[tuple[list[str], bool]]:
    """Each `pvf` command of the README's bash blocks (lines joined over a trailing `\\`), as
    its arguments, and whether it runs offline (no ONLINE mark)."""
    commands = []
    for block in re.findall(r"^```bash\n(.*?)^```", README.read_text(), re.S | re.M):
        for line in block.replace("\\\n", " ").splitlines():
            args = shlex.split(line, comments=True)
            if args[:1] == ["pvf"]:
                commands.append((args[1:], not any(mark in line for mark in ONLINE)))
    return commands


def overrides(args: list[str]) -> dict[str, str]:
    return dict(a.split("=", 1) for a in args if "=" in a and not a.startswith("-"))


def test_the_readme_offline_commands_compose():
    commands = readme_commands()
    offline = [args for args, is_offline in commands if is_offline]
    assert len(offline) >= 4 and len(commands) > len(offline), commands
    for args in offline:
        values = overrides(args)  # unmarked commands must really need neither Hub nor key
        assert set(values.get("task", "banking77").split(",")) <= SHIPPED_TASKS, args
        assert set(values.get("model", "gpt2").split(",")) <= OFFLINE_MODELS, args
        assert config_error(args) is None, args
    # the check itself can fail: a misspelt value or key of the same command is one line
    assert config_error([*offline[0], "arm=lorra"]).startswith("unknown arm 'lorra'")
    assert config_error([*offline[0], "arm.lora.rr=3"]).startswith("unknown config key")


def test_the_readme_first_offline_job_runs(tmp_path):
    """The README's first offline job as a subprocess in tmp_path (its own MLflow store there),
    made small to take seconds: model=tiny at FAST's size (tests/test_run.py) in place of
    smollm2, 16 test examples, a 32-label budget and one epoch; its task, arms and sweep as the
    README has them."""
    first = next(args for args, is_offline in readme_commands() if is_offline)
    small = {key: value for key, value in overrides(
        [*FAST, "train_size=32", "model.max_epochs=1"]).items()
        if key != "task"}
    args = [a for a in first if a.split("=", 1)[0] not in small]
    args += [f"{key}={value}" for key, value in small.items()]
    result = pvf(tmp_path, *args)
    assert result.returncode == 0, result.stderr[-3000:]
    _, runs = runs_in(tmp_path)
    arms = overrides(first)["arm"].split(",")
    assert sorted(r.data.tags["arm"] for r in runs) == sorted(arms)
    for run in runs:
        assert run.info.status == "FINISHED" and run.data.tags["task"] == overrides(first)["task"]
        assert "test/accuracy" in run.data.metrics and run.data.metrics["data/n_test"] == 16
