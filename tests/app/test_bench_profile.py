"""`throughput.py --profile` on a tiny random model: both tables name every part, and the printed
times, shares and roofline fractions agree with each other and with the ceilings given."""
from __future__ import annotations

import logging
import re

import pytest
import torch

from benchmarks.throughput import profile_steps
from framework.engine.step_profiler import StepPart
from shared import DeviceProfile, EngineConfig
from tests.utils.engine import create_model

# A slow roof, so the tiny model's roofline times print above 0.000 ms
PROFILE = DeviceProfile(kind="cpu", name="test-roof", compute_units=1, memory_bytes=1 << 30,
                        memory_bandwidth=0.2e9, peak_flops={"bfloat16": 2e9, "float32": 1e9})


@pytest.fixture(scope="module")
def report() -> list[str]:
    model = create_model(seed=7, dtype=torch.bfloat16)
    config = EngineConfig(max_num_seqs=4, max_num_batched_tokens=32, max_model_len=128,
                          num_kv_blocks=64, block_size=4)
    prompts = [[10 + i] * n for i, n in enumerate((40, 9, 17, 25))]
    handler = ListHandler()
    logger = logging.getLogger("throughput")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        profile_steps(model, prompts, config, PROFILE, decode_steps=3, output_len=8)
    finally:
        logger.removeHandler(handler)
    return handler.lines


class ListHandler(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.extend(record.getMessage().splitlines())


def table(lines: list[str], kind: str) -> dict[str, list[str]]:
    """Rows of one kind's table: name -> the columns after it."""
    start = next(i for i, line in enumerate(lines) if line.startswith(f"step breakdown, {kind}:"))
    rows = {}
    for line in lines[start + 2:]:
        if not line.startswith("  ") or line.startswith("  gap"):
            break
        name = next(n for n in [p.value for p in StepPart] + ["step"] if line[2:].startswith(n))
        rows[name] = line[2 + len(name):].split()
    return rows


@pytest.mark.parametrize("kind", ["decode", "prefill (and mixed)"])
def test_every_part_is_printed_and_the_shares_add_up(report, kind):
    rows = table(report, kind)
    assert set(rows) == {p.value for p in StepPart} | {"step"}
    parts = [rows[p.value] for p in StepPart]
    for column in (0, 2):  # wall, then CPU: ms per step and share, printed to 0.001 ms and 0.1%
        step_ms = float(rows["step"][column])
        shares = [float(cols[column + 1].rstrip("%")) for cols in parts]
        assert all(s >= 0 for s in shares) and sum(shares) == pytest.approx(100, abs=0.35)
        assert sum(float(cols[column]) for cols in parts) == pytest.approx(step_ms, abs=0.004)
        for cols, share in zip(parts, shares):
            assert float(cols[column]) / step_ms * 100 == pytest.approx(share,
                                                                        abs=0.06 + 0.1 / step_ms)
    for part in (StepPart.LINEARS, StepPart.ATTENTION, StepPart.LM_HEAD, StepPart.SAMPLER):
        ms, _, _, _, roof_ms, of_roof, bound = rows[part.value][:7]
        assert float(ms) > 0 and float(roof_ms) > 0
        ms, roof_ms = float(ms), float(roof_ms)
        rounding = 0.0005 / ms + 0.0005 / roof_ms  # relative, of the printed milliseconds
        assert float(of_roof.rstrip("%")) == pytest.approx(
            100 * roof_ms / ms, abs=0.05 + 100 * roof_ms / ms * rounding)
        assert bound in ("compute", "memory")
        ceiling = "2" if bound == "compute" else "0.2"
        assert rows[part.value][9] == ceiling  # "<achieved> of <ceiling> GFLOP/s|GB/s"
    assert rows[StepPart.PYTHON.value][4] == "-"  # no roof
    gap = next(line for line in report[report.index(next(
        line for line in report if line.startswith(f"step breakdown, {kind}:"))):]
        if line.startswith("  gap to the roofline"))
    assert sum(map(float, re.findall(r" (\d+)%", gap))) == pytest.approx(100, abs=len(StepPart))


def test_the_ceilings_used_are_printed(report):
    line = next(line for line in report if line.startswith("step breakdown ceilings used"))
    assert "test-roof" in line and "GEMM 2 GFLOP/s" in line and "memory 0.2 GB/s" in line
