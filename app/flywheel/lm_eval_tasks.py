"""lm-evaluation-harness tasks registered for the promotion gate (`flywheel eval-set add-lm-eval`).

A task is a lm_eval YAML (multiple choice, local JSON/JSONL data) and its data files. Registration
copies both under `<data dir>/lm_eval_tasks/<name>/`, so the gate runs the task as registered even
after the original files move or change, and on whatever machine holds the data directory with
the models it compares. The task is built once by lm_eval itself at registration, so a template
or data error is refused then, not found by the next iteration.

The gate runs each task on base and candidate (`run_task`) and compares the per-item correctness
under the task's own metric (`acc` or `acc_norm`) like any other regression suite.
"""
from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from app.flywheel.eval_set_items import validate_name

TASKS_DIR = "lm_eval_tasks"
CONFIG_FILE = "task.yaml"
PER_ITEM_METRICS = ("acc", "acc_norm")  # 0/1 per item: what a paired test compares
SUITE_PREFIX = "lm-eval "


class LmEvalTaskError(ValueError):
    """A task that cannot be registered; the message says why."""


@dataclass(frozen=True, slots=True)
class LmEvalTask:
    name: str  # the flywheel's name for it; the report shows "lm-eval <name>"
    directory: Path  # the stored copy: task.yaml and its data files
    config: dict  # the YAML, with data_files as names inside `directory`
    metric: str
    sha256: str  # of the stored YAML and data: a changed task is measured again

    @property
    def suite_name(self) -> str:
        return SUITE_PREFIX + self.name


@dataclass(frozen=True, slots=True)
class ItemResult:
    doc_id: int
    passed: bool
    loglikelihoods: list[float]  # one per choice


def tasks_root(data_dir: Path) -> Path:
    return Path(data_dir) / TASKS_DIR


def _find_yaml(source: Path) -> Path:
    if source.is_dir():
        found = sorted([*source.glob("*.yaml"), *source.glob("*.yml")])
        if len(found) != 1:
            raise LmEvalTaskError(f"{source}: expected one task YAML in the folder, found "
                                  f"{len(found)}")
        return found[0]
    if not source.is_file():
        raise LmEvalTaskError(f"{source}: no such file or folder")
    return source


def _parse(yaml_path: Path) -> dict:
    yaml = _yaml()  # lm-eval's dependency: only needed once a task is registered
    try:
        config = yaml.safe_load(yaml_path.read_text())
    except yaml.YAMLError as e:  # also `!function` tags: code in a task is not stored
        raise LmEvalTaskError(f"{yaml_path}: not plain YAML: {str(e).splitlines()[0]}") from e
    if not isinstance(config, dict) or not isinstance(config.get("task"), str):
        raise LmEvalTaskError(f"{yaml_path}: not an lm-eval task (a mapping with a 'task' name)")
    if config.get("output_type") != "multiple_choice":
        raise LmEvalTaskError(f"{yaml_path}: output_type must be multiple_choice (the gate "
                              "compares log-likelihood answers), not "
                              f"{config.get('output_type')!r}")
    if config.get("dataset_path") not in ("json", "csv"):
        raise LmEvalTaskError(f"{yaml_path}: dataset_path must be json or csv with local "
                              "data_files (the gate downloads nothing)")
    return config


def _metric(config: dict, yaml_path: Path) -> str:
    metrics = [m.get("metric") for m in config.get("metric_list") or [] if isinstance(m, dict)]
    metric = metrics[0] if metrics else "acc"
    if metric not in PER_ITEM_METRICS:
        raise LmEvalTaskError(f"{yaml_path}: first metric must be one of {PER_ITEM_METRICS}, "
                              f"not {metric!r}")
    return metric


def _data_files(config: dict, yaml_path: Path) -> dict[str, Path]:
    """split -> the local file it names (relative paths are relative to the YAML)."""
    files = (config.get("dataset_kwargs") or {}).get("data_files")
    if isinstance(files, str):
        files = {"train": files}
    if not isinstance(files, dict) or not files or not all(isinstance(v, str)
                                                            for v in files.values()):
        raise LmEvalTaskError(f"{yaml_path}: dataset_kwargs.data_files must map each split to "
                              "one local file")
    out = {}
    for split, name in files.items():
        path = Path(name) if Path(name).is_absolute() else yaml_path.parent / name
        if not path.is_file():
            raise LmEvalTaskError(f"{yaml_path}: data file {name} for split {split!r} not found")
        out[str(split)] = path
    return out


def _sha256(directory: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(directory.iterdir()):
        digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def _runnable(task: LmEvalTask) -> dict:
    """The config lm_eval builds: data file names made absolute inside the stored copy."""
    files = task.config["dataset_kwargs"]["data_files"]
    return {**task.config, "dataset_kwargs": {**task.config["dataset_kwargs"], "data_files": {
        split: str(task.directory / name) for split, name in files.items()}}}


def _build(config: dict):
    """lm_eval's own task object (loads the data): raises on a bad template or data file."""
    try:
        manager = _task_manager()
    except ImportError as e:
        raise LmEvalTaskError("lm-eval is not installed: pip install 'flywheel[lm-eval]'") from e
    (task,) = manager.load([config])["tasks"].values()
    return task


def _task_manager():
    """Without lm_eval's built-in task index: a stored task is self-contained (no `include`)."""
    from lm_eval.tasks import TaskManager

    return TaskManager(include_defaults=False)


def register_task(data_dir: Path, name: str, source: Path, replace: bool = False) -> LmEvalTask:
    """Validate `source` (a task YAML, or a folder holding one) and store a copy as `name`."""
    validate_name(name)
    yaml_path = _find_yaml(Path(source))
    config = _parse(yaml_path)
    metric = _metric(config, yaml_path)
    files = _data_files(config, yaml_path)
    target = tasks_root(data_dir) / name
    if target.exists() and not replace:
        raise LmEvalTaskError(f"an lm-eval task named {name!r} already exists; pass --replace "
                              "to overwrite it")
    staging = Path(tempfile.mkdtemp(prefix=f".{name}-", dir=_ensure(tasks_root(data_dir))))
    try:
        stored = {split: f"{split}{path.suffix}" for split, path in files.items()}
        for split, path in files.items():
            shutil.copyfile(path, staging / stored[split])
        config = {**config, "dataset_kwargs": {**config["dataset_kwargs"], "data_files": stored}}
        (staging / CONFIG_FILE).write_text(_yaml().safe_dump(config, sort_keys=False))
        task = LmEvalTask(name, staging, config, metric, _sha256(staging))
        try:
            docs = list(_build(_runnable(task)).eval_docs)
        except LmEvalTaskError:
            raise
        except Exception as e:  # lm_eval's and datasets' errors: any of them means unusable
            raise LmEvalTaskError(f"{yaml_path}: lm_eval cannot build the task: "
                                  f"{type(e).__name__}: {e}") from e
        if not docs:
            raise LmEvalTaskError(f"{yaml_path}: the task's evaluation split has no items")
        if target.exists():
            shutil.rmtree(target)
        staging.rename(target)  # the gate never sees a half-written task
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return load_task(data_dir, name)


def _yaml():
    try:
        import yaml
    except ImportError as e:
        raise LmEvalTaskError("lm-eval is not installed: pip install 'flywheel[lm-eval]'") from e
    return yaml


def _ensure(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path


def load_task(data_dir: Path, name: str) -> LmEvalTask:
    directory = tasks_root(data_dir) / name
    config = _yaml().safe_load((directory / CONFIG_FILE).read_text())
    return LmEvalTask(name, directory, config, _metric(config, directory / CONFIG_FILE),
                      _sha256(directory))


def registered_tasks(data_dir: Path) -> list[LmEvalTask]:
    """Every registered task, by name (a task removed while an iteration runs is skipped)."""
    root = tasks_root(data_dir)
    if not root.is_dir():
        return []
    return [load_task(data_dir, d.name) for d in sorted(root.iterdir())
            if not d.name.startswith(".") and (d / CONFIG_FILE).is_file()]


def remove_task(data_dir: Path, name: str) -> bool:
    directory = tasks_root(data_dir) / name
    if not (directory / CONFIG_FILE).is_file():
        return False
    shutil.rmtree(directory)
    return True


def fingerprint(tasks: list[LmEvalTask]) -> str:
    """Part of the gate report's cache key: a task registered or changed since is measured."""
    return json.dumps({t.name: t.sha256 for t in tasks}, sort_keys=True)


def run_task(task: LmEvalTask, model, tokenizer) -> list[ItemResult]:
    """lm_eval's `simple_evaluate` on the loaded model; per-item results in document order."""
    from lm_eval import simple_evaluate

    from app.flywheel.lm_eval_model import PlatformLM

    config = _runnable(task)
    # No global seeding: the process's random state belongs to the flywheel (a multiple-choice
    # task without few-shot examples draws nothing at random).
    results = simple_evaluate(model=PlatformLM(model, tokenizer), tasks=[config],
                              task_manager=_task_manager(), log_samples=True, bootstrap_iters=0, verbosity="WARNING",
                              random_seed=None, numpy_random_seed=None, torch_random_seed=None)
    samples = sorted(results["samples"][config["task"]], key=lambda s: s["doc_id"])
    return [ItemResult(s["doc_id"], bool(s[task.metric]),
                       [float(r[0][0]) for r in s["resps"]]) for s in samples]
