"""Metrics and evaluation loops."""
