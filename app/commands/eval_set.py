"""`flywheel eval-set add|list|remove`: the eval sets the promotion gate runs as regression suites;
`add-lm-eval|list-lm-eval|remove-lm-eval`: lm-evaluation-harness tasks it runs too
(`app.flywheel.lm_eval_tasks`).

Bad input (a missing file, invalid JSONL, a taken name without --replace, an unknown name) is one
line on stderr and exit code 2, and nothing is stored.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer

group = typer.Typer(no_args_is_help=True, help="Eval sets the flywheel's gate checks every "
                    "candidate against (JSONL of messages + expected answer).")

DatabaseUrl = Annotated[Optional[str], typer.Option(help="SQLAlchemy URL of the store.")]
DataDir = Annotated[Optional[Path], typer.Option(help="Data directory (default ./data).")]


def _open_store(database_url: str | None, data_dir: Path | None):
    from app.core.config import Settings
    from app.store.session import open_store

    settings = Settings(database_url=database_url, **({"data_dir": data_dir} if data_dir else {}))
    return open_store(settings.database_url)


@group.command("add")
def add(
    name: Annotated[str, typer.Argument(help="Name of the set (letters, digits, '.', '_', '-').")],
    file: Annotated[Path, typer.Argument(help="JSONL: one {\"messages\": [...], \"expected\": "
                                         "\"...\"} or {\"prompt\": \"...\", \"expected\": \"...\"} "
                                         "per line.")],
    description: Annotated[str, typer.Option(help="What the set checks.")] = "",
    replace: Annotated[bool, typer.Option(
        "--replace", help="Overwrite a set of the same name.")] = False,
    database_url: DatabaseUrl = None,
    data_dir: DataDir = None,
) -> None:
    """Register FILE as eval set NAME."""
    from app.flywheel.eval_set_items import (MAX_TOTAL_BYTES, EvalSetInputError, parse_jsonl,
                                             validate_description, validate_name)
    from app.store import crud_eval_sets

    validate_name(name)
    validate_description(description)
    if not file.is_file():
        raise FileNotFoundError(f"{file}: {'not a file' if file.exists() else 'no such file'}")
    if file.stat().st_size > MAX_TOTAL_BYTES:  # refused before reading it into memory
        raise EvalSetInputError(f"{file}: larger than {MAX_TOTAL_BYTES >> 20} MiB")
    items = parse_jsonl(file.read_bytes())
    store = _open_store(database_url, data_dir)
    try:
        with store.transaction() as session:
            info = crud_eval_sets.add_eval_set(session, name=name, description=description,
                                               items=items, created_by=None, replace=replace)
    except crud_eval_sets.EvalSetExists as e:
        raise ValueError(f"{e}; pass --replace to overwrite it") from e
    finally:
        store.close()
    verb = "replaced" if info.replaced else "added"
    typer.echo(f"{verb} eval set {info.name}: {info.item_count} items, "
               f"sha256 {info.content_sha256}")


@group.command("list")
def list_sets(
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per set.")] = False,
    database_url: DatabaseUrl = None,
    data_dir: DataDir = None,
) -> None:
    """The registered eval sets: name, items, created, by whom, content hash, description."""
    from app.store import crud_eval_sets

    store = _open_store(database_url, data_dir)
    try:
        with store.session_factory() as session:
            sets = crud_eval_sets.list_eval_sets(session)
    finally:
        store.close()
    if as_json:
        for s in sets:
            typer.echo(json.dumps({"name": s.name, "item_count": s.item_count,
                                   "created_at": s.created_at.isoformat(),
                                   "created_by": s.created_by, "sha256": s.content_sha256,
                                   "description": s.description}))
        return
    rows = [("NAME", "ITEMS", "CREATED", "BY", "SHA256", "DESCRIPTION")] + [
        (s.name, str(s.item_count), s.created_at.strftime("%Y-%m-%d %H:%M"), s.created_by or "-",
         s.content_sha256[:12], _one_line(s.description)) for s in sets]
    widths = [max(len(row[i]) for row in rows) for i in range(5)]
    for row in rows:
        typer.echo("  ".join(cell.ljust(width) for cell, width in zip(row, widths)) + "  " + row[5])


def _one_line(text: str) -> str:
    """Descriptions come from API users too: no line breaks or terminal escapes in the table."""
    return "".join(c if c.isprintable() else " " for c in " ".join(text.split()))


@group.command("remove")
def remove(
    name: Annotated[str, typer.Argument(help="Name of the set to remove.")],
    database_url: DatabaseUrl = None,
    data_dir: DataDir = None,
) -> None:
    """Remove eval set NAME (the gate stops checking it)."""
    from app.store import crud_eval_sets

    store = _open_store(database_url, data_dir)
    try:
        with store.transaction() as session:
            removed = crud_eval_sets.remove_eval_set(session, name=name)
    finally:
        store.close()
    if not removed:
        raise ValueError(f"no eval set named {name!r}")
    typer.echo(f"removed eval set {name}")


@group.command("add-lm-eval")
def add_lm_eval(
    name: Annotated[str, typer.Argument(help="Name of the task in the gate report "
                                        "(\"lm-eval NAME\").")],
    source: Annotated[Path, typer.Argument(help="An lm-eval task YAML (multiple_choice, "
                                           "dataset_path json/csv with local data_files), or a "
                                           "folder holding one.")],
    replace: Annotated[bool, typer.Option(
        "--replace", help="Overwrite a task of the same name.")] = False,
    database_url: DatabaseUrl = None,
    data_dir: DataDir = None,
) -> None:
    """Register an lm-evaluation-harness task the gate runs on base and candidate. The YAML and
    its data files are copied into the database: later edits to the originals are not seen
    (register again with --replace)."""
    from app.core.data_dir import DataDir as Data
    from app.flywheel.lm_eval_tasks import register_task

    task = register_task(Data.at(data_dir, database_url), name, source, replace=replace)
    typer.echo(f"added lm-eval task {task.name} ({task.config['task']}, metric {task.metric}), "
               f"sha256 {task.sha256}")


@group.command("remove-lm-eval")
def remove_lm_eval(
    name: Annotated[str, typer.Argument(help="Name of the lm-eval task to remove.")],
    database_url: DatabaseUrl = None,
    data_dir: DataDir = None,
) -> None:
    """Remove lm-eval task NAME (the gate stops running it)."""
    from app.core.data_dir import DataDir as Data
    from app.flywheel.lm_eval_tasks import remove_task

    if not remove_task(Data.at(data_dir, database_url), name):
        raise ValueError(f"no lm-eval task named {name!r}")
    typer.echo(f"removed lm-eval task {name}")


@group.command("list-lm-eval")
def list_lm_eval(
    database_url: DatabaseUrl = None,
    data_dir: DataDir = None,
) -> None:
    """The registered lm-eval tasks: name, lm_eval task, metric, content hash."""
    from app.core.data_dir import DataDir as Data
    from app.flywheel.lm_eval_tasks import registered_tasks

    for task in registered_tasks(Data.at(data_dir, database_url)):
        typer.echo(f"{task.name}  {task.config['task']}  {task.metric}  {task.sha256[:12]}")
