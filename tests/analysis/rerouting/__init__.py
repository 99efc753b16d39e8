"""Tests of analysis.rerouting (a package so its conftest does not clash with tests/conftest.py)."""
