"""Persistent store: SQLAlchemy 2 models, sessions, CRUD functions and Alembic migrations.

SQLite (WAL) by default, PostgreSQL by URL. Other engineers add tables in their own
`app/store/<thing>.py` files on the one declarative `Base` from `app/store/base.py`.
"""
