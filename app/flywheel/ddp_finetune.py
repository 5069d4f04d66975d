"""Data-parallel fine-tuning of a candidate: `torchrun` launches N ranks of this module.

`flywheel worker` with `FLYWHEEL_TRAIN_PROCESSES=N` (N > 1) runs the finetune step as
`python -m torch.distributed.run --standalone --nproc-per-node N -m app.flywheel.ddp_finetune
SPEC`. Every rank builds the same examples from the snapshot, trains on its shard of each global
batch (framework/train/distributed.py sums the gradients with all-reduce; gloo, since the trainer
runs on CPU) and rank 0 writes the model. Each rank's micro-batch is the recipe's divided by N, so
the global batch — and the result, within float tolerance — is the single-process one.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ENV = "FLYWHEEL_TRAIN_PROCESSES"


def train_processes() -> int:
    """How many processes this worker trains with (its own environment decides: a worker on a
    bigger machine sets more); 1 means in-process, as before."""
    raw = os.environ.get(ENV, "1")
    try:
        n = int(raw)
    except ValueError:
        raise ValueError(f"{ENV} must be a whole number >= 1, got {raw!r}") from None
    if not 1 <= n <= 256:
        raise ValueError(f"{ENV} must be between 1 and 256, got {n}")
    return n


def check_divides(recipe: dict, processes: int) -> None:
    micro = int(recipe.get("micro_batch_size", 8))
    if micro % processes:
        raise ValueError(f"{ENV}={processes} must divide the recipe's micro_batch_size ({micro}): "
                         f"each process takes an equal share of the same global batch")


def launch(settings, base_dir: str, snapshot_id: str, out_dir: Path,
           base_snapshot_id: str | None, processes: int) -> dict:
    """Run the fine-tune on `processes` ranks through torchrun; returns rank 0's summary."""
    check_divides(settings.recipe, processes)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    spec = out_dir.parent / f".{out_dir.name}.ddp.json"
    spec.write_text(json.dumps({"settings": settings.to_dict(), "base_dir": str(base_dir),
                                "snapshot_id": snapshot_id, "out_dir": str(out_dir),
                                "base_snapshot_id": base_snapshot_id}))
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone",
           f"--nproc-per-node={processes}", "-m", "app.flywheel.ddp_finetune", str(spec)]
    env = {**os.environ, "OMP_NUM_THREADS": str(max(1, (os.cpu_count() or 1) // processes))}
    done = subprocess.run(cmd, env=env, capture_output=True, text=True)
    spec.unlink(missing_ok=True)
    if done.returncode != 0:
        raise RuntimeError(f"data-parallel fine-tune ({processes} processes) failed with exit "
                           f"{done.returncode}:\n{done.stderr[-4000:]}")
    return json.loads((out_dir / "train_summary.json").read_text())


def main(argv: list[str]) -> None:
    import torch.distributed as dist

    from app.flywheel.settings import FlywheelSettings
    from app.flywheel.training import train_candidate

    spec = json.loads(Path(argv[0]).read_text())
    dist.init_process_group("gloo")  # torchrun's environment: rank, world size, rendezvous
    try:
        train_candidate(FlywheelSettings.from_dict(spec["settings"]), spec["base_dir"],
                        spec["snapshot_id"], Path(spec["out_dir"]),
                        base_snapshot_id=spec["base_snapshot_id"])
    finally:
        dist.destroy_process_group()


if __name__ == "__main__":
    main(sys.argv[1:])
