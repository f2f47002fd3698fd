"""Datasets, transforms and on-disk layout writers."""
