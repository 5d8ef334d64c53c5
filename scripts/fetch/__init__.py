"""Helpers for scripts/fetch_material.py (archive readers, R data reader, corpus extractors)."""
