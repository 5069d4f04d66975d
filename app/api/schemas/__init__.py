"""Pydantic request/response shapes of the HTTP API."""
