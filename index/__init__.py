"""Yunying index package."""
