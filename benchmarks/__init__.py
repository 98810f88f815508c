"""Yunying benchmarks package."""
