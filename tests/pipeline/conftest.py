"""Fixtures of the pipeline tests."""
