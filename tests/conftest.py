"""Shared fixtures: the MediaMTX stand-in fixtures are available to every test."""

pytest_plugins = ["tests.support.fixtures"]
