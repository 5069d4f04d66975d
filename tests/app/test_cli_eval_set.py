"""`flywheel eval-set add|list|remove` as a user runs it: exit codes, one-line errors on stderr,
nothing stored on bad input, and the list output."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from app.store import crud_eval_sets
from app.store.session import open_store

ROOT = Path(__file__).resolve().parents[2]
GOOD = ('{"prompt": "Once upon a", "expected": "time"}\n'
        '{"messages": [{"role": "system", "content": "Be brief."}, '
        '{"role": "user", "content": "What is 2 plus 3?"}], "expected": "5"}\n')


def _cli(data_dir: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "app.cli", "eval-set", *args, "--data-dir", str(data_dir)],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)


def _stored(data_dir: Path) -> dict[str, int]:
    store = open_store(f"sqlite:///{(data_dir / 'flywheel.db').resolve()}")
    try:
        with store.session_factory() as session:
            return {s.name: s.item_count for s in crud_eval_sets.list_eval_sets(session)}
    finally:
        store.close()


@pytest.fixture
def files(tmp_path) -> dict[str, Path]:
    contents = {"good": GOOD, "one": '{"prompt": "Zoo", "expected": "animals"}\n',
                "bad": GOOD + '{"messages": [{"role": "user", "content": 7}], "expected": "x"}\n',
                "empty": "\n"}
    paths = {}
    for name, text in contents.items():
        paths[name] = tmp_path / f"{name}.jsonl"
        paths[name].write_text(text)
    return paths


def test_add_list_remove(tmp_path, files):
    added = _cli(tmp_path, "add", "facts", str(files["good"]), "--description", "demo\nfacts")
    assert added.returncode == 0, added.stderr
    assert added.stdout.startswith("added eval set facts: 2 items, sha256 ")
    assert _cli(tmp_path, "add", "zoo", str(files["one"])).returncode == 0
    listed = _cli(tmp_path, "list")
    header, *rows = listed.stdout.splitlines()
    assert header.split() == ["NAME", "ITEMS", "CREATED", "BY", "SHA256", "DESCRIPTION"]
    assert [row.split()[:2] for row in rows] == [["facts", "2"], ["zoo", "1"]]
    assert rows[0].endswith("demo facts")  # one line per set, whatever the description holds
    as_json = [json.loads(line) for line in _cli(tmp_path, "list", "--json").stdout.splitlines()]
    assert [(s["name"], s["item_count"], s["description"]) for s in as_json] == [
        ("facts", 2, "demo\nfacts"), ("zoo", 1, "")]
    assert added.stdout.split()[-1] == as_json[0]["sha256"]
    removed = _cli(tmp_path, "remove", "zoo")
    assert (removed.returncode, removed.stdout) == (0, "removed eval set zoo\n")
    assert _stored(tmp_path) == {"facts": 2}


def test_taken_name_needs_replace(tmp_path, files):
    assert _cli(tmp_path, "add", "facts", str(files["good"])).returncode == 0
    again = _cli(tmp_path, "add", "facts", str(files["one"]))
    assert again.returncode == 2 and again.stdout == ""
    assert again.stderr == ("flywheel: error: an eval set named 'facts' already exists; "
                            "pass --replace to overwrite it\n")
    assert _stored(tmp_path) == {"facts": 2}
    replaced = _cli(tmp_path, "add", "facts", str(files["one"]), "--replace")
    assert replaced.returncode == 0 and replaced.stdout.startswith("replaced eval set facts: 1 items")
    assert _stored(tmp_path) == {"facts": 1}


@pytest.mark.parametrize("args, message", [
    (("add", "facts", "{bad}"), "line 3: messages[0].content must be a string, got a number"),
    (("add", "facts", "{empty}"), "no items: the file holds no JSON lines"),
    (("add", "facts", "{missing}"), "missing.jsonl: no such file"),
    (("add", "no/slash", "{one}"), "name: an eval set name is 1-64 letters"),
    (("add", "facts", "{bad}", "--replace"), "line 3: "),  # a bad replacement keeps the old set
    (("remove", "nope"), "no eval set named 'nope'"),
    (("add", "facts", "{big}", "--replace"), "big.jsonl: larger than 16 MiB"),  # not read at all
])
def test_bad_input_is_one_line_exit_2_and_stores_nothing(tmp_path, files, args, message):
    assert _cli(tmp_path, "add", "facts", str(files["one"])).returncode == 0
    with open(tmp_path / "big.jsonl", "wb") as big:
        big.truncate(17 << 20)  # sparse: no disk written
    paths = {**{k: str(v) for k, v in files.items()}, "missing": str(tmp_path / "missing.jsonl"),
             "big": str(tmp_path / "big.jsonl")}
    result = _cli(tmp_path, *(a.format(**paths) for a in args))
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.startswith("flywheel: error: ") and result.stderr.count("\n") == 1
    assert message in result.stderr
    assert _stored(tmp_path) == {"facts": 1}
