"""`flywheel import-llama2c` end to end: import the real stories260K, then `flywheel generate` from
BOS reproduces Karpathy's published greedy sample; bad files exit 2 with one line."""
from __future__ import annotations

from tests.app.test_cli_generate import run_cli
from tests.model.factories import STORIES_LLAMA2C, manifest_sample

BIN, TOKENIZER = STORIES_LLAMA2C / "stories260K.bin", STORIES_LLAMA2C / "tok512.model"


def test_import_then_generate_reproduces_published_sample(tmp_path):
    out = tmp_path / "stories260K"
    imported = run_cli("import-llama2c", str(BIN), str(TOKENIZER), str(out))
    assert imported.returncode == 0, imported.stderr
    assert imported.stdout == ""
    assert {p.name for p in out.iterdir()} == {
        "config.json", "generation_config.json", "model.safetensors", "tokenizer.json",
        "tokenizer.model", "tokenizer_config.json"}
    generated = run_cli("generate", "--model", str(out), "--prompt", "", "--temperature", "0",
                        "--max-tokens", "256")
    assert generated.returncode == 0, generated.stderr
    assert generated.stdout == manifest_sample() + "\n"


def _assert_one_line_error(result, *fragments: str) -> None:
    assert result.returncode == 2
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("flywheel: error: "), result.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


def test_truncated_checkpoint_exits_2(tmp_path):
    cut = tmp_path / "cut.bin"
    cut.write_bytes(BIN.read_bytes()[:500_000])
    result = run_cli("import-llama2c", str(cut), str(TOKENIZER), str(tmp_path / "out"))
    _assert_one_line_error(result, str(cut), "truncated", "500000 bytes", "expected 1056540")


def test_missing_files_and_arguments_exit_2(tmp_path):
    missing = tmp_path / "none.bin"
    result = run_cli("import-llama2c", str(missing), str(TOKENIZER), str(tmp_path / "o"))
    _assert_one_line_error(result, str(missing), "not found")
    _assert_one_line_error(run_cli("import-llama2c", str(BIN)), "Missing argument")
