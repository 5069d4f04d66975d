"""The HTTP API: FastAPI app factory, routes, schemas, errors, auth and metrics."""
