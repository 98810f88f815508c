"""Yunying storage package."""
