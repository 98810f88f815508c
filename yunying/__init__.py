"""Yunying yunying package."""
