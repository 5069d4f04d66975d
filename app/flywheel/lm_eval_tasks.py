"""lm-evaluation-harness tasks registered for the promotion gate (`flywheel eval-set add-lm-eval`).

A task is a lm_eval YAML (multiple choice, local JSON/JSONL data) and its data files. Registration
stores a copy of both in the store's database (`app.store.lm_eval_task_store`), so the gate runs
the task as registered even after the original files move or change, on whichever machine's worker
runs it. lm_eval reads files, so a worker writes a task's stored copy once into a local cache
folder named by its content hash (`<data dir>/cache/lm_eval_tasks/<sha256>/`), a cache and never
state: losing it loses nothing. Tasks registered under `<data dir>/lm_eval_tasks/<name>/` before
the database are moved in once (the folders then wait under `lm_eval_tasks/.imported/`). The task
is built once by lm_eval itself at registration, so a template or data error is refused then, not
found by the next iteration.

The gate runs each task on base and candidate (`run_task`) and compares the per-item correctness
under the task's own metric (`acc` or `acc_norm`) like any other regression suite.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from app.core.data_dir import DataDir
from app.flywheel.eval_set_items import EvalSetInputError, validate_name
from app.store.lm_eval_task_store import SqlLmEvalTaskStore, StoredLmEvalTask

logger = logging.getLogger(__name__)
TASKS_DIR = "lm_eval_tasks"  # where registered tasks lived before the database
IMPORTED_DIR = ".imported"  # inside TASKS_DIR: the folders moved into the database
CACHE_DIR = "cache/lm_eval_tasks"  # local copies of stored tasks, one folder per content hash
CONFIG_FILE = "task.yaml"
PER_ITEM_METRICS = ("acc", "acc_norm")  # 0/1 per item: what a paired test compares
SUITE_PREFIX = "lm-eval "


class LmEvalTaskError(ValueError):
    """A task that cannot be registered; the message says why."""


@dataclass(frozen=True, slots=True)
class LmEvalTask:
    name: str  # the flywheel's name for it; the report shows "lm-eval <name>"
    directory: Path  # a local copy of the stored task: task.yaml and its data files
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


def _sha256(files: dict[str, bytes]) -> str:
    # the hash the task folders had (file names in order, each with its bytes), so a gate report
    # cached before the move to the database stays keyed the same
    digest = hashlib.sha256()
    for name in sorted(files):
        digest.update(name.encode() + b"\0" + files[name] + b"\0")
    return digest.hexdigest()


def _read_files(directory: Path) -> dict[str, bytes]:
    return {path.name: path.read_bytes() for path in directory.iterdir() if path.is_file()}


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


def open_tasks(data: DataDir) -> SqlLmEvalTaskStore:
    """The registered tasks in `data`'s database, after moving in any task folders still under
    `<data dir>/lm_eval_tasks/`."""
    from app.core.engines import shared_engine

    tasks = SqlLmEvalTaskStore(shared_engine(data.database_url))
    if (data.root / TASKS_DIR).is_dir():
        import_task_folders(tasks, data.root / TASKS_DIR)
    return tasks


def register_task(data: DataDir, name: str, source: Path, replace: bool = False) -> LmEvalTask:
    """Validate `source` (a task YAML, or a folder holding one) and store a copy as `name`."""
    validate_name(name)
    yaml_path = _find_yaml(Path(source))
    config = _parse(yaml_path)
    metric = _metric(config, yaml_path)
    files = _data_files(config, yaml_path)
    tasks = open_tasks(data)
    if not replace and tasks.get(name) is not None:
        raise _exists(name)
    stored = {split: f"{split}{path.suffix}" for split, path in files.items()}
    config = {**config, "dataset_kwargs": {**config["dataset_kwargs"], "data_files": stored}}
    contents = {stored[split]: path.read_bytes() for split, path in files.items()}
    contents[CONFIG_FILE] = _yaml().safe_dump(config, sort_keys=False).encode()
    with tempfile.TemporaryDirectory(prefix=f"lm-eval-{name}-") as staging:
        _write_files(Path(staging), contents)
        _check_builds(LmEvalTask(name, Path(staging), config, metric, _sha256(contents)),
                      yaml_path)
    if not tasks.add(name, contents, _sha256(contents), replace=replace):
        raise _exists(name)  # registered by someone else meanwhile
    return load_task(data, name)


def _exists(name: str) -> LmEvalTaskError:
    return LmEvalTaskError(f"an lm-eval task named {name!r} already exists; pass --replace "
                           "to overwrite it")


def _check_builds(task: LmEvalTask, yaml_path: Path) -> None:
    try:
        docs = list(_build(_runnable(task)).eval_docs)
    except LmEvalTaskError:
        raise
    except Exception as e:  # lm_eval's and datasets' errors: any of them means unusable
        raise LmEvalTaskError(f"{yaml_path}: lm_eval cannot build the task: "
                              f"{type(e).__name__}: {e}") from e
    if not docs:
        raise LmEvalTaskError(f"{yaml_path}: the task's evaluation split has no items")


def _yaml():
    try:
        import yaml
    except ImportError as e:
        raise LmEvalTaskError("lm-eval is not installed: pip install 'flywheel[lm-eval]'") from e
    return yaml


def _write_files(directory: Path, files: dict[str, bytes]) -> None:
    for file_name, content in files.items():
        (directory / file_name).write_bytes(content)


def _local_copy(data: DataDir, stored: StoredLmEvalTask) -> Path:
    """The stored task's files in this machine's cache (written once per content hash; a
    concurrent writer's identical copy is as good as ours)."""
    target = data.root / CACHE_DIR / stored.sha256
    if (target / CONFIG_FILE).is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{stored.sha256[:12]}-", dir=target.parent))
    try:
        _write_files(staging, stored.files)
        with contextlib.suppress(OSError):  # another process put the same copy there first
            staging.rename(target)  # lm_eval never sees a half-written task
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def _task(data: DataDir, stored: StoredLmEvalTask) -> LmEvalTask:
    config = _yaml().safe_load(stored.files[CONFIG_FILE].decode())
    return LmEvalTask(stored.name, _local_copy(data, stored), config,
                      _metric(config, Path(stored.name) / CONFIG_FILE), stored.sha256)


def load_task(data: DataDir, name: str) -> LmEvalTask:
    stored = open_tasks(data).get(name)
    if stored is None:
        raise LmEvalTaskError(f"no lm-eval task named {name!r}")
    return _task(data, stored)


def registered_tasks(data: DataDir) -> list[LmEvalTask]:
    """Every registered task, by name."""
    return [_task(data, stored) for stored in open_tasks(data).list()]


def remove_task(data: DataDir, name: str) -> bool:
    return open_tasks(data).remove(name)


def import_task_folders(tasks: SqlLmEvalTaskStore, root: Path) -> int:
    """Move task folders registered before the database (`<root>/<name>/task.yaml` and its data)
    in, once: each is stored unless the database holds a task of that name (the database wins),
    then moved to `<root>/.imported/<name>`. A folder that cannot be imported is logged and left
    for a person to look at. Returns how many were stored."""
    imported = 0
    for folder in sorted(root.iterdir()):
        if folder.name.startswith(".") or not (folder / CONFIG_FILE).is_file():
            continue  # staging folders of the old registration, and what was imported
        try:
            validate_name(folder.name)
            files = _read_files(folder)
        except (EvalSetInputError, OSError) as e:
            logger.warning("lm-eval task folder %s not imported: %s", folder, e)
            continue
        imported += tasks.add(folder.name, files, _sha256(files))
        done = root / IMPORTED_DIR / folder.name
        done.parent.mkdir(exist_ok=True)
        try:
            folder.rename(done)
        except OSError as e:  # another importer moved it, or an older copy is there: kept
            logger.warning("lm-eval task folder %s imported but not moved: %s", folder, e)
    if imported:
        logger.info("imported %d lm-eval tasks from %s into the database", imported, root)
    return imported


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
