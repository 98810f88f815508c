"""Yunying frontends package."""
