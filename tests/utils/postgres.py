"""A fresh PostgreSQL schema per test run on the local server, dropped afterwards."""
from __future__ import annotations

import uuid

from sqlalchemy import create_engine, text

POSTGRES_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


class fresh_postgres_schema:
    """Context manager: CREATE SCHEMA with a unique name, DROP ... CASCADE on exit. Point the store
    at it with `open_store(POSTGRES_URL, schema=name)` (which sets search_path per connection)."""

    def __enter__(self) -> str:
        self.name = f"test_{uuid.uuid4().hex[:12]}"
        self._admin = create_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT")
        with self._admin.connect() as conn:
            conn.execute(text(f'CREATE SCHEMA "{self.name}"'))
        return self.name

    def __exit__(self, *exc) -> None:
        with self._admin.connect() as conn:
            conn.execute(text(f'DROP SCHEMA "{self.name}" CASCADE'))
        self._admin.dispose()
