"""Helpers shared by the test suite: databases, an in-process daemon, waiting."""
