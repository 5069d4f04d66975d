"""Annotation datasets (Argilla-style): label schemas, answer validation, task distribution,
agreement per question and export. Plain functions, no I/O; the tables live in app/store."""
