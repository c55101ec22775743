"""Builders and small clients shared by the tests (no fixtures here: those live in conftest.py files)."""
