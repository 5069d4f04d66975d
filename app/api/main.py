"""FastAPI app factory: `create_app(settings, models=...)`.

On startup the store is opened and migrated, the local user and the configured API keys (owned
by the bootstrap user "admin"; bootstrap keys of earlier starts that are not passed now are
revoked) are ensured, and each model starts loading in a worker thread
(requests for it get 503 until it is ready); the store writer starts draining the durable
outbox, replaying what a previous run left in it. On shutdown running models are stopped, the
writer drains (what it cannot write in time stays in the outbox), and the store closes.
"""
from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from fastapi import FastAPI

from app.api.deps import LOCAL_USERNAME, AppState, Principal
from app.api.body_limit import BodyLimitMiddleware
from app.api.errors import install_error_handlers
from app.api.guards import AuthGuards
from app.api.metrics import ServingMetrics
from app.api.routes import (auth, conversations, feedback, health, openai_chat,
                            openai_completions, openai_models)
from app.api.routes import datasets, model_versions, report, review
from app.api.routes import eval_sets
from app.api.routes import openai_responses
from app.api.routes import annotation
from app.api.routes import lora_adapters
from app.api.routes import replicas
from app.core.config import Settings
from app.serving.loading import load_like
from app.serving.model_host import ModelHost, ServedModel
from app.core.registry import open_registry
from app.serving.registry_watcher import RegistryWatcher, VersionLoader
from app.serving.rollout import Rollout
from app.store import crud_users
from app.store.session import Store, open_store
from app.store.outbox import Outbox, outbox_path
from app.store.writer import StoreWriter

logger = logging.getLogger(__name__)

ADMIN_USERNAME = "admin"


def create_app(settings: Settings, models: dict[str, Callable[[], ServedModel]] | None = None,
               host: ModelHost | None = None, load_version: VersionLoader = load_like,
               public_name: str | None = None) -> FastAPI:
    """`models` maps a model id to a loader run in a thread at startup; `host` may hold models
    that are already loaded (tests, benchmarks). The first model serves `public_name` (default:
    its own id); the model registry under the data dir may put another version (and a canary)
    behind it."""
    host = host or ModelHost()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        store = await asyncio.to_thread(open_store, settings.database_url, settings.database_schema)
        local_user = await asyncio.to_thread(_bootstrap_users, store, settings)
        # What the last run left in the outbox is replayed by the writer from here on.
        outbox = await asyncio.to_thread(
            Outbox, outbox_path(settings.data_dir, settings.database_url, settings.database_schema),
            settings.outbox_max_records)
        writer = StoreWriter(store, outbox, settings.writer_backoff_s, settings.writer_max_backoff_s)
        first_id = next(iter(models or {}), None) or next((m.id for m in host.ready()), "")
        rollout = Rollout(public_name or first_id, first_id,
                          canary_fraction=settings.canary_fraction)
        app.state.flywheel = AppState(settings, store, writer, host, ServingMetrics(host), local_user,
                                      asyncio.get_running_loop(), rollout,
                                      guards=(guards := AuthGuards.from_settings(settings)))
        recording = asyncio.get_running_loop().create_task(
            guards.verifier.last_used.run(store, settings.key_last_used_flush_s))
        app.state.flywheel.outbox = outbox
        for model_id, load in (models or {}).items():
            host.start_loading(model_id, load)
        registry = await asyncio.to_thread(open_registry, settings.data.registry_dir,
                                           settings.database_url, engine=store.engine)
        watcher = RegistryWatcher(registry, rollout, host, load_version, settings.registry_poll_s)
        watching = asyncio.get_running_loop().create_task(watcher.run())
        try:
            yield
        finally:
            watching.cancel()
            recording.cancel()  # writes the keys' last-used times it still holds
            await asyncio.gather(watching, recording, return_exceptions=True)
            await host.shutdown()
            await asyncio.to_thread(writer.close)
            await asyncio.to_thread(outbox.close)
            store.close()

    app = FastAPI(title="Flywheel", version="0.1.0", lifespan=lifespan,
                  description="OpenAI-compatible serving, chat history and feedback.")
    install_error_handlers(app)
    app.add_middleware(BodyLimitMiddleware, max_body_bytes=settings.max_body_bytes)
    app.include_router(health.router)
    app.include_router(openai_models.router)
    app.include_router(openai_chat.router)
    app.include_router(openai_completions.router)
    app.include_router(openai_responses.router)
    app.include_router(conversations.router)
    app.include_router(feedback.router)
    app.include_router(auth.router)
    app.include_router(review.router)
    app.include_router(datasets.router)
    app.include_router(report.router)
    app.include_router(model_versions.router)
    app.include_router(eval_sets.router)
    app.include_router(annotation.router)
    app.include_router(lora_adapters.router)
    app.include_router(replicas.router)
    return app


def _bootstrap_users(store: Store, settings: Settings) -> Principal:
    with store.transaction() as session:
        local = crud_users.ensure_user(session, username=LOCAL_USERNAME, role="admin")
        if settings.api_keys:  # rotation: keys from earlier starts that are not passed now are revoked
            admin = crud_users.ensure_user(session, username=ADMIN_USERNAME, role="admin")
            changed = crud_users.sync_bootstrap_keys(session, user_id=admin.id, keys=settings.api_keys)
            if changed.revoked_ids:
                logger.warning("revoked %d earlier --api-key key(s)", len(changed.revoked_ids))
            if changed.refused_ids:
                logger.warning("%d --api-key key(s) were revoked before and stay revoked: pass a "
                               "new key", len(changed.refused_ids))
        return Principal(id=local.id, username=local.username, role=local.role)
