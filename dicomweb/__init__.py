"""Yunying dicomweb package."""
