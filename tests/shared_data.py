"""Where the read-only shared checkpoints and datasets are, for every test that uses them.

$FLYWHEEL_SHARED_DIR when set; else `shared/` beside this checkout (the usual layout); else
/work/shared, where the project's machines and CI keep them, so a clone made anywhere else (a
temporary directory) still finds them.
"""
from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]


def _shared_dir() -> Path:
    if os.environ.get("FLYWHEEL_SHARED_DIR"):
        return Path(os.environ["FLYWHEEL_SHARED_DIR"])
    beside = REPO_ROOT.parent / "shared"
    return beside if (beside / "models").is_dir() else Path("/work/shared")


SHARED_DIR = _shared_dir()
STORIES_HF = SHARED_DIR / "models" / "stories260K-hf"
