"""Streamlit product UI. It talks to the Flywheel API only over HTTP (see `client.py`)."""
