"""Refusals of the auth component, in the archive's one error catalog (rendered by the app)."""
from __future__ import annotations

from yunying.errors import ArchiveError


class InvalidRequest(ArchiveError):
    """A malformed or impossible administrative request."""

    http_status = 400


class Forbidden(ArchiveError):
    """Identified, but not allowed to do this (another hospital, separation of duties...)."""

    http_status = 403


class NotFound(ArchiveError):
    """No such user, role, hospital, key or token (or not one the caller may see)."""

    http_status = 404


class Conflict(ArchiveError):
    """The name is taken."""

    http_status = 409


class BadCredentials(ArchiveError):
    """Wrong password, code or token; locked out; link expired or replayed."""

    http_status = 401
