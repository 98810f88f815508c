"""Yunying dimse package."""
