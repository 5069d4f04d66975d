"""Is the store reachable, and is a given database error an outage rather than a bug?

The API turns outages into 503 `store_unavailable` (the client may retry) and keeps 500 for
everything else; this module is where SQLAlchemy's exception taxonomy is known, so the API layer
never has to. It knows nothing about HTTP.
"""
from __future__ import annotations

from sqlalchemy import exc, text

from app.store.session import Store

# Errors that say "the database cannot answer right now", not "this statement is wrong":
# refused / dropped connections, a locked or unreadable SQLite file, a pool with no free
# connection within its timeout.
_OUTAGE_ERRORS = (exc.OperationalError, exc.InterfaceError, exc.TimeoutError,
                  exc.DisconnectionError)


def is_store_outage(error: BaseException) -> bool:
    """True when `error` means the store is unavailable (worth a retry later)."""
    if isinstance(error, _OUTAGE_ERRORS):
        return True
    # any other driver error raised while the connection was being invalidated is an outage too
    return isinstance(error, exc.DBAPIError) and bool(error.connection_invalidated)


def ping(store: Store) -> None:
    """One trivial read through the pool; raises the driver's error when the store can't answer.
    Reads a real table (not `SELECT 1`) so an unreadable SQLite file fails too."""
    with store.engine.connect() as connection:
        connection.execute(text("SELECT 1 FROM users LIMIT 1"))
