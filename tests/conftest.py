"""Shared fixtures come in as a plugin, so no test imports this file or another test."""

pytest_plugins = ["tests.fixtures"]
