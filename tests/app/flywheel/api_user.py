"""A user and an admin of a running platform, through its public HTTP API only: the official
`openai` client asks (`/v1/chat/completions` or `/v1/completions`), httpx gives feedback
(`POST /v1/feedback`), starts an iteration (`POST /v1/flywheel/iterate`), reads its run
(`GET /v1/flywheel/runs`) and what the public model name serves (`GET /v1/models/{name}`).

`running_platform` starts real `flywheel serve` + `flywheel worker` processes on a fresh data dir
(`app.demo.processes`); fine-tuning settings reach them only through `FLYWHEEL_*` variables.
"""
from __future__ import annotations

import contextlib
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import httpx
from openai import OpenAI

from app.demo.processes import platform_env, start_serve, start_worker, stop, wait_for
from tests.app.flywheel.taught_skills import Case

FINISHED = ("promoted", "rejected", "failed", "skipped")


@dataclass(frozen=True, slots=True)
class Reply:
    text: str
    message_id: str
    model_version: str


@dataclass(frozen=True, slots=True)
class Measured:
    right: int
    total: int
    versions: frozenset[str]  # the model versions that answered

    @property
    def accuracy(self) -> float:
        return self.right / self.total


class ApiUser:
    """Asks `model` greedily, as chat turns or as plain completions (`chat=False`)."""

    def __init__(self, url: str, model: str, chat: bool, max_tokens: int = 40) -> None:
        self.model, self.chat, self.max_tokens = model, chat, max_tokens
        self.client = OpenAI(base_url=f"{url}/v1", api_key="sk-local", max_retries=0, timeout=120)
        self.http = httpx.Client(base_url=url, timeout=60)

    def ask(self, prompt: str) -> Reply:
        if self.chat:
            response = self.client.chat.completions.create(
                model=self.model, messages=[{"role": "user", "content": prompt}], temperature=0,
                max_tokens=self.max_tokens)
            text = response.choices[0].message.content or ""
        else:
            response = self.client.completions.create(model=self.model, prompt=prompt,
                                                      temperature=0, max_tokens=self.max_tokens)
            text = response.choices[0].text
        extra = response.model_extra or {}
        return Reply(text, extra["message_id"], extra["model_version"])

    def ask_all(self, prompts: list[str], concurrency: int = 8) -> list[Reply]:
        with ThreadPoolExecutor(concurrency) as pool:
            return list(pool.map(self.ask, prompts))

    def feedback(self, message_id: str, **fields) -> None:
        self.http.post("/v1/feedback", json={"message_id": message_id, **fields}).raise_for_status()

    def teach(self, cases: tuple[Case, ...], liked: tuple[Case, ...] = ()) -> dict[str, int]:
        """Ask every case: a wrong answer gets thumbs-down and the case's correction. Ask every
        `liked` case: a right answer gets a thumbs-up. Returns the counts."""
        counts = {"corrections": 0, "thumbs_up": 0}
        # one at a time: greedy answers then do not depend on what shares the batch, so the same
        # model gives the same snapshot (and the same held-out groups) on every run
        for case, reply in zip(cases, self.ask_all([c.prompt for c in cases], concurrency=1)):
            if not case.is_right(reply.text):
                self.feedback(reply.message_id, thumbs="down", correction=case.correction)
                counts["corrections"] += 1
        for case, reply in zip(liked, self.ask_all([c.prompt for c in liked], concurrency=1)):
            if case.is_right(reply.text):
                self.feedback(reply.message_id, thumbs="up")
                counts["thumbs_up"] += 1
        return counts

    def measure(self, cases: tuple[Case, ...]) -> Measured:
        replies = self.ask_all([c.prompt for c in cases])
        right = sum(c.is_right(r.text) for c, r in zip(cases, replies))
        return Measured(right, len(cases), frozenset(r.model_version for r in replies))

    def iterate(self, timeout_s: float) -> dict:
        """Start one iteration and wait for its run to finish; returns the run record."""
        queued = self.http.post("/v1/flywheel/iterate")
        queued.raise_for_status()
        run_id = queued.json()["id"]

        def finished_run() -> dict | None:
            runs = self.http.get("/v1/flywheel/runs").raise_for_status().json()["data"]
            run = next((r for r in runs if r["id"] == run_id), None)
            return run if run and run["status"] in FINISHED else None

        return wait_for(finished_run, timeout_s, f"iteration {run_id}", interval_s=1)

    def wait_until_serving(self, version_id: str, timeout_s: float = 60) -> None:
        """Until the public name routes every conversation to `version_id` (hot swap done)."""
        def serves_only() -> bool:
            card = self.http.get(f"/v1/models/{self.model}")
            return (card.is_success and card.json()["version"] == version_id
                    and card.json()["canary"] is None)

        wait_for(serves_only, timeout_s, f"the server to serve {version_id}", interval_s=0.2)

    def version(self, version_id: str) -> dict:
        versions = self.http.get("/v1/model-versions").raise_for_status().json()["data"]
        return next(v for v in versions if v["id"] == version_id)


def gate_reasons(run: dict) -> list[str]:
    """The gate's reasons as the run record keeps them (the canary step's decision)."""
    return (run["steps"].get("canary", {}).get("gate") or {}).get("reasons", [])


@contextlib.contextmanager
def running_platform(data_dir: Path, model_dir: str, model_name: str,
                     **env: str) -> Iterator[str]:
    """`flywheel serve` + `flywheel worker` on `data_dir`; yields the server's base URL."""
    data_dir.mkdir(parents=True, exist_ok=True)
    environment = platform_env(data_dir, model_dir, **env)
    server, url = start_serve(environment, model_dir, data_dir / "serve.log", model_name)
    worker = start_worker(environment, data_dir / "worker.log")
    try:
        yield url
    finally:
        stop(worker)
        stop(server)
