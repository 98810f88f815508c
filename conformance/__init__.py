"""Yunying conformance package."""
