"""Wiring between the HTTP API and the engine: load a model into an AsyncEngine, render chat
templates, turn requests into engine calls and engine outputs into text deltas."""
