"""Chaos benchmark: does `flywheel serve` keep every answer it acknowledged, and stay live, when
things go wrong?

    flywheel bench reliability --quick                      # every scenario for a few seconds
    flywheel bench reliability --scenarios kill,outage --duration-s 60
    flywheel bench reliability --database-url postgresql+psycopg://postgres@127.0.0.1:5432/test

Each scenario starts `flywheel serve` as a subprocess on a fresh data dir (SQLite there, or a
temporary PostgreSQL database `flywheel_chaos_<random>` created next to the one named by
--database-url and dropped afterwards) and drives concurrent chat clients (streaming and not)
that keep the message id of every answer they received in full (the JSON response, or the
stream's finish_reason chunk), plus a client of the store routes (conversation list/detail,
feedback). A probe process of its own GETs /health every 50 ms; the server's RSS is sampled
from /proc/PID/status.
- soak: steady traffic, no fault (RSS drift over its second half);
- abort: an abort storm: half the streams are dropped by their client after a few chunks;
- kill: the store stops taking writes (so the outbox has a backlog), then SIGKILL of the server
  mid-traffic; restarted on the same data dir, it replays its outbox;
- outage: the store is unavailable for half the run: SQLite held locked by another connection
  (BEGIN EXCLUSIVE), PostgreSQL refusing connections to the database (ALLOW_CONNECTIONS false,
  its sessions terminated);
- slow: the store stalls in bursts (the same lock held for 0.6 s of every 1.2 s; on PostgreSQL
  an EXCLUSIVE lock on `messages`, which blocks writes and leaves reads alone, as SQLite's does).
After the traffic (and the restart), once the outbox is drained, the store itself is read and
every acknowledged id looked up. Targets (exit code 1 when one is missed, each named): 0 answers
lost; no 5xx but 503 and no dropped connection (except at the kill); /health p99 < 200 ms; no KV
blocks in use once the traffic is gone; RSS drift < 5% over the second half of the soak.

One file past 500 lines because `flywheel bench` runs benchmarks as scripts; its sections (what
the clients saw, the store's faults, the scenarios' timelines, results, driver) are marked.
"""
from __future__ import annotations

import argparse
import json
import logging
import multiprocessing
import random
import sqlite3
import statistics
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import httpx  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402
from sqlalchemy import create_engine, text  # noqa: E402
from sqlalchemy.engine import make_url  # noqa: E402

from app.demo.processes import platform_env, start_serve, stop, wait_for  # noqa: E402
from app.demo.recipe import DEMO_MODEL_DIR  # noqa: E402
from app.store import crud_chat  # noqa: E402
from app.store.session import open_store  # noqa: E402

logger = logging.getLogger("reliability")

MODEL_NAME = "chaos"
SCENARIOS = ("soak", "abort", "kill", "outage", "slow")
HEALTH_INTERVAL_S = 0.05
RSS_INTERVAL_S = 0.25
HEALTH_P99_TARGET_MS = 200.0
RSS_DRIFT_TARGET_PCT = 5.0
STALL_ON_S, STALL_OFF_S = 0.6, 0.6


# ---- what the clients saw ------------------------------------------------------------------

@dataclass
class Ledger:
    """Everything the clients observed, shared by their threads (appends under `lock`)."""
    lock: threading.Lock = field(default_factory=threading.Lock)
    acknowledged: list[str] = field(default_factory=list)  # answers received in full
    chat_statuses: Counter = field(default_factory=Counter)  # "200", "503", "dropped", ...
    store_statuses: Counter = field(default_factory=Counter)  # the store routes' codes
    unexpected: list[str] = field(default_factory=list)  # 5xx other than 503: route + body
    client_aborts: int = 0  # streams a client dropped on purpose (the abort storm)
    health: list[tuple[float, float | None]] = field(default_factory=list)  # (t, ms or None)
    rss_kb: list[tuple[float, int]] = field(default_factory=list)  # (t, VmRSS)
    fault_windows: list[tuple[float, float]] = field(default_factory=list)  # monotonic
    server_down: bool = False  # killed and not yet back: failures then are expected

    def count(self, statuses: Counter, key: str) -> None:
        with self.lock:
            statuses[key] += 1

    def status(self, statuses: Counter, route: str, response: httpx.Response) -> None:
        self.count(statuses, str(response.status_code))
        if response.status_code >= 500 and response.status_code != 503:
            with self.lock:
                self.unexpected.append(f"{route} {response.status_code}: {response.text[:200]}")


@dataclass
class Server:
    """The `flywheel serve` under test; `url` and `process` change when it is restarted."""
    env: dict
    model_dir: Path
    log_dir: Path
    process: object = None
    url: str = ""
    starts: int = 0

    def start(self) -> None:
        self.starts += 1
        log_path = self.log_dir / f"serve-{self.starts}.log"
        try:
            self.process, self.url = start_serve(self.env, str(self.model_dir), log_path,
                                                 model_name=MODEL_NAME, timeout_s=300)
        except (RuntimeError, TimeoutError):
            # the data dir (and the log) is a temporary directory: say why here
            logger.error("flywheel serve's log:\n%s", log_path.read_text()[-3000:])
            raise

    def ready(self) -> dict | None:
        try:
            return httpx.get(f"{self.url}/ready", timeout=5).json()
        except (httpx.HTTPError, ValueError):
            return None

    def engine_gauges(self) -> dict[str, float]:
        """flywheel_kv_cache_usage_ratio and flywheel_num_requests_running from /metrics."""
        gauges: dict[str, float] = {}
        for line in httpx.get(f"{self.url}/metrics", timeout=10).text.splitlines():
            for name in ("flywheel_kv_cache_usage_ratio", "flywheel_num_requests_running"):
                if line.startswith(name + "{"):
                    gauges[name] = gauges.get(name, 0.0) + float(line.rsplit(" ", 1)[1])
        return gauges


class HealthProbe:
    """GET /health every HEALTH_INTERVAL_S from a process of its own, so that the clients'
    threads (SSE parsing holds this process's GIL) do not add to the latency it measures.
    Samples are (monotonic start time, ms or None for a failed probe); the clock is system-wide,
    so they line up with the fault windows recorded here."""

    def __init__(self, url: str) -> None:
        context = multiprocessing.get_context("spawn")
        self._url = context.Array("c", 256)
        self._url.value = url.encode()
        self._paused, self._stopping = context.Event(), context.Event()
        self._samples, started = context.Queue(), context.Event()
        self._process = context.Process(target=_probe_health, daemon=True, args=(
            self._url, self._paused, self._stopping, self._samples, started))
        self._process.start()
        if not started.wait(120):  # the traffic's first seconds are measured too
            raise RuntimeError("the /health probe process did not start")

    def pause(self) -> None:
        self._paused.set()

    def resume(self, url: str) -> None:
        self._url.value = url.encode()
        self._paused.clear()

    def stop(self) -> list[tuple[float, float | None]]:
        self._stopping.set()
        samples = self._samples.get(timeout=60)
        self._process.join(10)
        return samples


def _probe_health(url_box, paused, stopping, samples_out, started) -> None:
    samples: list[tuple[float, float | None]] = []
    next_probe = time.monotonic()
    with httpx.Client(timeout=5) as http:
        started.set()
        while not stopping.wait(max(0.0, next_probe - time.monotonic())):
            next_probe = max(next_probe + HEALTH_INTERVAL_S, time.monotonic())  # a steady beat
            if paused.is_set():
                continue
            started = time.monotonic()
            try:
                ok = http.get(f"{url_box.value.decode()}/health").status_code == 200
            except httpx.HTTPError:
                ok = False
            if not paused.is_set():  # else killed while the probe was in flight
                samples.append((started, (time.monotonic() - started) * 1e3 if ok else None))
    samples_out.put(samples)


class Traffic:
    """Chat clients (every other one streaming; with `abort_share`, that share of the streaming
    ones drop their stream after 1-4 chunks), one store-route client, the /health probe and the
    RSS sampler, each a daemon thread until `stop()`."""

    def __init__(self, server: Server, ledger: Ledger, num_clients: int,
                 abort_share: float = 0.0) -> None:
        self.server, self.ledger = server, ledger
        self.stopping = threading.Event()
        self.monitors_stopping = threading.Event()
        self.probe = HealthProbe(server.url)
        clients = [threading.Thread(target=self._chat_client, args=(i, abort_share), daemon=True)
                   for i in range(num_clients)]
        clients.append(threading.Thread(target=self._store_client, daemon=True))
        self.clients = clients
        self.monitors = [threading.Thread(target=self._sample_rss, daemon=True)]
        for thread in [*self.monitors, *self.clients]:
            thread.start()

    def stop(self) -> None:
        self.stopping.set()
        for thread in self.clients:
            thread.join(90)

    def stop_monitors(self) -> None:
        self.monitors_stopping.set()
        for thread in self.monitors:
            thread.join(10)
        self.ledger.health = self.probe.stop()

    def server_down(self) -> None:
        """The server is about to be killed: failures until `server_back` are expected."""
        self.ledger.server_down = True
        self.probe.pause()

    def server_back(self) -> None:
        self.probe.resume(self.server.url)
        self.ledger.server_down = False

    # -- chat clients --
    def _chat_client(self, index: int, abort_share: float) -> None:
        rng = random.Random(index)
        streaming = index % 2 == 0
        http = httpx.Client(timeout=90)  # absolute URLs: the server's port changes on restart
        while not self.stopping.is_set():
            abort_after = rng.randint(1, 4) if streaming and rng.random() < abort_share else None
            body = {"model": MODEL_NAME, "stream": streaming, "temperature": 0.8,
                    "seed": rng.randrange(10**6), "max_tokens": rng.randint(8, 48),
                    "messages": [{"role": "user", "content": f"Tell me about {rng.random():.6f}"}]}
            try:
                if streaming:
                    self._stream(http, body, abort_after)
                else:
                    self._complete(http, body)
            except httpx.HTTPError as e:
                self.ledger.count(self.ledger.chat_statuses, "dropped")
                logger.debug("chat client %d: %r (server down: %s)", index, e,
                             self.ledger.server_down)
                time.sleep(0.2)
        http.close()

    def _complete(self, http: httpx.Client, body: dict) -> None:
        response = http.post(f"{self.server.url}/v1/chat/completions", json=body)
        self.ledger.status(self.ledger.chat_statuses, "chat", response)
        if response.status_code == 200:
            with self.ledger.lock:
                self.ledger.acknowledged.append(response.json()["message_id"])
        elif response.status_code in (429, 503):
            time.sleep(0.2)

    def _stream(self, http: httpx.Client, body: dict, abort_after: int | None) -> None:
        with http.stream("POST", f"{self.server.url}/v1/chat/completions", json=body) as response:
            self.ledger.status(self.ledger.chat_statuses, "chat (stream)", response)
            if response.status_code != 200:
                response.read()
                time.sleep(0.2)
                return
            num_chunks = 0
            for line in response.iter_lines():
                if not line.startswith("data: {"):
                    continue
                chunk = json.loads(line[6:])
                num_chunks += 1
                if chunk["choices"] and chunk["choices"][0]["finish_reason"]:
                    with self.ledger.lock:
                        self.ledger.acknowledged.append(chunk["message_id"])
                elif abort_after is not None and num_chunks >= abort_after:
                    with self.ledger.lock:
                        self.ledger.client_aborts += 1
                    return  # closing the stream mid-answer: the client went away

    # -- the store routes: list, read one conversation, feedback on an acknowledged answer --
    def _store_client(self) -> None:
        rng = random.Random(-1)
        with httpx.Client(timeout=30) as http:
            while not self.stopping.wait(0.3):
                try:
                    self._store_calls(http, self.server.url, rng)
                except httpx.HTTPError:
                    self.ledger.count(self.ledger.store_statuses, "dropped")

    def _store_calls(self, http: httpx.Client, url: str, rng: random.Random) -> None:
        listed = http.get(f"{url}/v1/conversations", params={"limit": 5})
        self.ledger.status(self.ledger.store_statuses, "GET /v1/conversations", listed)
        if listed.status_code == 200 and listed.json().get("data"):
            conversation_id = listed.json()["data"][0]["id"]
            detail = http.get(f"{url}/v1/conversations/{conversation_id}")
            self.ledger.status(self.ledger.store_statuses, "GET /v1/conversations/{id}", detail)
        with self.ledger.lock:
            message_id = rng.choice(self.ledger.acknowledged) if self.ledger.acknowledged else None
        if message_id:
            feedback = http.post(f"{url}/v1/feedback",
                                 json={"message_id": message_id, "thumbs": "up"})
            self.ledger.status(self.ledger.store_statuses, "POST /v1/feedback", feedback)

    # -- monitors --
    def _sample_rss(self) -> None:
        while not self.monitors_stopping.wait(RSS_INTERVAL_S):
            if self.ledger.server_down:
                continue
            try:
                status = Path(f"/proc/{self.server.process.pid}/status").read_text()
            except OSError:
                continue
            rss = next(int(line.split()[1]) for line in status.splitlines()
                       if line.startswith("VmRSS:"))
            with self.ledger.lock:
                self.ledger.rss_kb.append((time.monotonic(), rss))


# ---- the store under test and its faults ----------------------------------------------------

class SqliteStore:
    """The default store: `flywheel.db` in the scenario's data dir."""
    kind = "sqlite"

    def __init__(self, data_dir: Path) -> None:
        self.path = data_dir / "flywheel.db"
        self.url = f"sqlite:///{self.path}"

    @contextmanager
    def outage(self) -> Iterator[None]:
        """Another connection holds the write lock: the store is there but cannot be written."""
        blocker = sqlite3.connect(self.path, timeout=30)
        blocker.execute("BEGIN EXCLUSIVE")
        try:
            yield
        finally:
            blocker.rollback()
            blocker.close()

    stall = outage  # a burst of the same lock

    def close(self) -> None:
        pass


class PostgresStore:
    """A temporary database next to the one in `url`, created here and dropped in `close()`;
    faults go through a superuser connection to the `postgres` database."""
    kind = "postgresql"

    def __init__(self, url: str) -> None:
        self.name = f"flywheel_chaos_{uuid.uuid4().hex[:10]}"
        self.url = make_url(url).set(database=self.name).render_as_string(hide_password=False)
        self._admin = create_engine(make_url(url).set(database="postgres"),
                                    isolation_level="AUTOCOMMIT")
        self._sql(f'CREATE DATABASE "{self.name}"')

    def _sql(self, statement: str) -> None:
        with self._admin.connect() as conn:
            conn.execute(text(statement))

    @contextmanager
    def outage(self) -> Iterator[None]:
        """The database refuses connections, and the server's open ones are terminated."""
        self._sql(f'ALTER DATABASE "{self.name}" ALLOW_CONNECTIONS false')
        self._sql("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                  f"WHERE datname = '{self.name}' AND pid <> pg_backend_pid()")
        try:
            yield
        finally:
            self._sql(f'ALTER DATABASE "{self.name}" ALLOW_CONNECTIONS true')

    @contextmanager
    def stall(self) -> Iterator[None]:
        """Writes to `messages` wait (reads go on), like SQLite's write lock."""
        engine = create_engine(self.url)
        try:
            with engine.connect() as conn, conn.begin():
                conn.execute(text("LOCK TABLE messages IN EXCLUSIVE MODE"))
                yield
        finally:
            engine.dispose()

    def close(self) -> None:
        self._sql(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')
        self._admin.dispose()


def stored_ids(url: str, ids: list[str]) -> set[str]:
    """Which of `ids` the store holds, read through app/store (no server involved)."""
    store = open_store(url, migrate=False)
    try:
        with store.transaction() as session:
            return {i for i in set(ids) if crud_chat.get_message(session, message_id=i)}
    finally:
        store.close()


# ---- scenarios ------------------------------------------------------------------------------

@dataclass
class Run:
    """One scenario in progress: what its timeline function may use."""
    server: Server
    store: SqliteStore | PostgresStore
    ledger: Ledger
    traffic: Traffic
    duration_s: float
    outbox_depth_at_kill: int | None = None

    @contextmanager
    def fault(self, context) -> Iterator[None]:
        started = time.monotonic()
        with context:
            yield
        self.ledger.fault_windows.append((started, time.monotonic()))


def soak(run: Run) -> None:
    time.sleep(run.duration_s)


def abort_storm(run: Run) -> None:
    time.sleep(run.duration_s)  # the storm is the clients' abort_share


def kill(run: Run) -> None:
    time.sleep(run.duration_s * 0.4)
    with run.fault(run.store.outage()):  # answers now pile up in the outbox only
        time.sleep(run.duration_s * 0.3)
        # kill only with answers the store does not have yet, or the outbox replay is untested
        run.outbox_depth_at_kill = wait_for(_outbox_backlog(run.server), 60,
                                            "answers waiting in the outbox", interval_s=0.1)
        run.traffic.server_down()
        run.server.process.kill()  # SIGKILL, mid-traffic
        run.server.process.wait()
        run.traffic.stop()
    run.server.start()  # same data dir: replays the outbox
    run.traffic.server_back()


def _outbox_backlog(server: Server) -> Callable[[], int | None]:
    def depth() -> int | None:
        return ((server.ready() or {}).get("outbox") or {}).get("depth") or None
    return depth


def outage(run: Run) -> None:
    time.sleep(run.duration_s * 0.25)
    with run.fault(run.store.outage()):
        time.sleep(run.duration_s * 0.5)
    time.sleep(run.duration_s * 0.25)


def slow(run: Run) -> None:
    time.sleep(run.duration_s * 0.2)
    deadline = time.monotonic() + run.duration_s * 0.6
    while time.monotonic() < deadline:
        with run.fault(run.store.stall()):
            time.sleep(STALL_ON_S)
        time.sleep(STALL_OFF_S)
    time.sleep(run.duration_s * 0.2)


TIMELINES: dict[str, Callable[[Run], None]] = {
    "soak": soak, "abort": abort_storm, "kill": kill, "outage": outage, "slow": slow}


# ---- results --------------------------------------------------------------------------------

@dataclass
class ScenarioResult:
    scenario: str
    store: str  # sqlite / postgresql
    duration_s: float  # traffic time (the timeline), without starts and drains
    acknowledged: int  # answers the clients received in full
    stored: int  # ... of which the store holds
    lost: int
    client_aborts: int  # streams the clients dropped on purpose (abort storm)
    chat_statuses: dict[str, int]
    store_route_statuses: dict[str, int]
    unexpected_5xx: list[str]
    health_probes: int
    health_failures: int  # probes that failed while the server was up
    health_p50_ms: float | None
    health_p99_ms: float | None
    health_p99_fault_ms: float | None  # probes that started inside a fault window
    rss_start_mb: float | None
    rss_end_mb: float | None
    rss_drift_pct: float | None  # over the second half of the run
    kv_usage_after: float | None  # fraction of KV blocks in use once the traffic is gone
    running_after: float | None
    outbox_depth_at_kill: int | None = None  # answers not yet in the store when killed
    misses: list[str] = field(default_factory=list)


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q / 100 * (len(ordered) - 1))))]


def rss_drift_pct(samples: list[tuple[float, int]]) -> float | None:
    """Relative change of RSS from the middle of the run to its end: the median of the first
    tenth of the second half's samples against the median of the last tenth."""
    if len(samples) < 10:
        return None
    window = max(1, len(samples) // 10)
    at_mid = [kb for _, kb in samples[len(samples) // 2:][:window]]
    at_end = [kb for _, kb in samples[-window:]]
    return (statistics.median(at_end) / statistics.median(at_mid) - 1) * 100


def summarize(name: str, run: Run, stored: int, gauges: dict[str, float]) -> ScenarioResult:
    ledger = run.ledger
    latencies = [ms for _, ms in ledger.health if ms is not None]
    in_fault = [ms for t, ms in ledger.health if ms is not None and
                any(start <= t <= end for start, end in ledger.fault_windows)]
    rss = ledger.rss_kb
    result = ScenarioResult(
        scenario=name, store=run.store.kind, duration_s=run.duration_s,
        acknowledged=len(set(ledger.acknowledged)), stored=stored,
        lost=len(set(ledger.acknowledged)) - stored, client_aborts=ledger.client_aborts,
        chat_statuses=dict(ledger.chat_statuses), store_route_statuses=dict(ledger.store_statuses),
        unexpected_5xx=ledger.unexpected[:10], health_probes=len(ledger.health),
        health_failures=len(ledger.health) - len(latencies),
        health_p50_ms=percentile(latencies, 50), health_p99_ms=percentile(latencies, 99),
        health_p99_fault_ms=percentile(in_fault, 99),
        rss_start_mb=rss[0][1] / 1024 if rss else None,
        rss_end_mb=rss[-1][1] / 1024 if rss else None, rss_drift_pct=rss_drift_pct(rss),
        kv_usage_after=gauges.get("flywheel_kv_cache_usage_ratio"),
        running_after=gauges.get("flywheel_num_requests_running"),
        outbox_depth_at_kill=run.outbox_depth_at_kill)
    result.misses = misses(result)
    return result


def misses(r: ScenarioResult) -> list[str]:
    found = []
    if r.acknowledged == 0:
        found.append("no answer was acknowledged: nothing was measured")
    if r.lost:
        found.append(f"{r.lost} of {r.acknowledged} acknowledged answers are not in the store")
    if r.unexpected_5xx:
        found.append(f"{len(r.unexpected_5xx)} 5xx other than 503, e.g. {r.unexpected_5xx[0]}")
    dropped = r.chat_statuses.get("dropped", 0) + r.store_route_statuses.get("dropped", 0)
    if dropped and r.scenario != "kill":
        found.append(f"{dropped} requests ended without an HTTP answer (connection dropped)")
    if r.health_failures:
        found.append(f"{r.health_failures} /health probes failed while the server was up")
    if r.health_p99_ms is None or r.health_p99_ms >= HEALTH_P99_TARGET_MS:
        found.append(f"/health p99 {_fmt(r.health_p99_ms, 0)} ms (target < {HEALTH_P99_TARGET_MS:g})")
    if r.health_p99_fault_ms is not None and r.health_p99_fault_ms >= HEALTH_P99_TARGET_MS:
        found.append(f"/health p99 during the fault {r.health_p99_fault_ms:.0f} ms "
                     f"(target < {HEALTH_P99_TARGET_MS:g})")
    if r.kv_usage_after != 0.0 or r.running_after != 0.0:
        found.append(f"KV usage {r.kv_usage_after} / running {r.running_after} after the traffic")
    if r.scenario == "soak" and (r.rss_drift_pct is None
                                 or abs(r.rss_drift_pct) >= RSS_DRIFT_TARGET_PCT):
        found.append(f"RSS drift {r.rss_drift_pct} % over the second half "
                     f"(target < {RSS_DRIFT_TARGET_PCT:g} %)")
    return found


def _fmt(value, digits: int = 1) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def render(results: list[ScenarioResult], console: Console) -> None:
    """One column per scenario, one row per figure; then every missed target, named."""
    table = Table(title=f"flywheel serve under faults ({results[0].store} store)")
    table.add_column("")
    for r in results:
        table.add_column(r.scenario, justify="right")

    def codes(statuses: dict[str, int]) -> str:
        return " ".join(f"{k}:{v}" for k, v in sorted(statuses.items())) or "-"
    rows = {
        "acknowledged answers": lambda r: str(r.acknowledged),
        "stored": lambda r: str(r.stored),
        "lost": lambda r: str(r.lost),
        "streams dropped by clients": lambda r: str(r.client_aborts),
        "unwritten at the kill": lambda r: "-" if r.outbox_depth_at_kill is None
        else str(r.outbox_depth_at_kill),
        "chat status codes": lambda r: codes(r.chat_statuses),
        "store-route status codes": lambda r: codes(r.store_route_statuses),
        "/health p50 / p99 ms": lambda r: f"{_fmt(r.health_p50_ms)} / {_fmt(r.health_p99_ms)}",
        "/health p99 during fault ms": lambda r: _fmt(r.health_p99_fault_ms),
        "/health failures": lambda r: f"{r.health_failures} of {r.health_probes}",
        "RSS MB start / end": lambda r: f"{_fmt(r.rss_start_mb, 0)} / {_fmt(r.rss_end_mb, 0)}",
        "RSS drift, 2nd half": lambda r: f"{_fmt(r.rss_drift_pct)} %",
        "KV in use after": lambda r: _fmt(r.kv_usage_after, 3),
        "targets": lambda r: "met" if not r.misses else f"[red]{len(r.misses)} missed[/red]",
    }
    for label, cell in rows.items():
        table.add_row(label, *(cell(r) for r in results))
    console.print(table)
    for r in results:
        for miss in r.misses:
            console.print(f"[red]{r.scenario}[/red]: {miss}")


# ---- driver ---------------------------------------------------------------------------------

def run_scenario(name: str, args, work_dir: Path) -> ScenarioResult:
    data_dir = work_dir / name
    data_dir.mkdir(parents=True)
    store = SqliteStore(data_dir) if args.database_url is None else PostgresStore(args.database_url)
    try:
        extra = {} if args.database_url is None else {"FLYWHEEL_DATABASE_URL": store.url}
        server = Server(platform_env(data_dir, str(args.model), **extra), args.model, data_dir)
        server.start()
        try:
            return _drive(name, server, store, args)
        finally:
            stop(server.process)
    finally:
        store.close()


def _drive(name: str, server: Server, store, args) -> ScenarioResult:
    ledger = Ledger()
    traffic = Traffic(server, ledger, args.clients, abort_share=0.5 if name == "abort" else 0.0)
    run = Run(server, store, ledger, traffic, args.duration_s)
    try:
        TIMELINES[name](run)
    finally:
        traffic.stop()
    gauges = _idle_gauges(server)
    acknowledged = list(set(ledger.acknowledged))
    stored = _wait_stored(server, store.url, acknowledged)
    traffic.stop_monitors()
    return summarize(name, run, len(stored), gauges)


def _idle_gauges(server: Server) -> dict[str, float]:
    """The engine's gauges once the running requests are gone (at most 30 s)."""
    def idle() -> dict[str, float] | None:
        gauges = server.engine_gauges()
        return gauges if gauges.get("flywheel_num_requests_running") == 0 else None
    try:
        return wait_for(idle, 30, "the engine to go idle", interval_s=0.2)
    except TimeoutError:
        return server.engine_gauges()


def _wait_stored(server: Server, url: str, acknowledged: list[str]) -> set[str]:
    """The acknowledged ids in the store, once the server's outbox is empty (or 120 s)."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        ready = server.ready() or {}
        if (ready.get("outbox") or {}).get("depth") == 0:
            break
        time.sleep(0.2)
    return stored_ids(url, acknowledged)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenarios", default=",".join(SCENARIOS),
                        help=f"comma-separated, from: {', '.join(SCENARIOS)}")
    parser.add_argument("--duration-s", type=float, default=40.0, help="traffic per scenario")
    parser.add_argument("--clients", type=int, default=8, help="concurrent chat clients")
    parser.add_argument("--database-url", default=None,
                        help="PostgreSQL URL (a temporary database is created beside it); "
                             "default: SQLite in a temporary data dir")
    parser.add_argument("--model", type=Path, default=DEMO_MODEL_DIR)
    parser.add_argument("--out", type=Path, default=None, help="write the results as JSON")
    parser.add_argument("--quick", action="store_true", help="a few seconds per scenario")
    args = parser.parse_args(argv)
    names = [s.strip() for s in args.scenarios.split(",") if s.strip()]
    unknown = [s for s in names if s not in SCENARIOS]
    if unknown or not names:
        parser.error(f"unknown scenario(s) {unknown}; choose from {', '.join(SCENARIOS)}")
    if args.database_url and not args.database_url.startswith("postgresql"):
        parser.error("--database-url must be a postgresql URL (SQLite is the default)")
    if args.quick:
        args.duration_s = min(args.duration_s, 6.0)
        args.clients = min(args.clients, 4)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per request otherwise
    console = Console(width=max(100, 36 + 22 * len(names)))
    results = []
    with tempfile.TemporaryDirectory(prefix="flywheel-chaos-") as work_dir:
        for name in names:
            console.print(f"[bold]{name}[/bold]: {args.duration_s:g} s, {args.clients} clients")
            results.append(run_scenario(name, args, Path(work_dir)))
    render(results, console)
    if args.out:
        args.out.write_text(json.dumps([asdict(r) for r in results], indent=2))
    return 1 if any(r.misses for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
