"""Permissions, the default roles, and the separation-of-duties rule.

Roles are data (named sets of permissions, in the `roles` table); these are the defaults
created with the store. Platform roles (super and operations admin) belong to no hospital's
patient data: they read images only through a recorded break-glass.
"""
from __future__ import annotations

from yunying.auth.errors import Forbidden, InvalidRequest
from yunying.auth.principal import ADMIN, DICOMWEB_DELETE, DICOMWEB_READ, DICOMWEB_WRITE, DOWNLOAD

USERS_MANAGE = "users.manage"  # users, departments and self-registrations of one hospital
SECURITY_MANAGE = "security.manage"  # API keys, launch secrets, token revocation
SHARES_MANAGE = "shares.manage"  # capability tokens and grants for studies one may see
AUDIT_READ = "audit.read"
OPERATIONS = "operations"  # service health and configuration, no patient data
BREAK_GLASS = "break_glass"  # may open a recorded emergency access to every study
REPORT_WRITE = "report.write"
QC_REVIEW = "qc.review"
DELIVERY = "delivery"  # the delivery console: its hospital's exams, delivery switches, patients' access log
MPI_MANAGE = "mpi.manage"  # the patient master index: identities, reviews, links, code table (issue 15)

PERMISSIONS = frozenset({
    DICOMWEB_READ, DICOMWEB_WRITE, DICOMWEB_DELETE, DOWNLOAD, ADMIN, USERS_MANAGE, SECURITY_MANAGE,
    SHARES_MANAGE, AUDIT_READ, OPERATIONS, BREAK_GLASS, REPORT_WRITE, QC_REVIEW, DELIVERY, MPI_MANAGE,
})
# `admin` is the platform administrator's permission (and a full-scope system key's scope): it
# implies the system administrator's permissions, not the security administrator's (the security
# policy) nor the audit administrator's (the trail): separation of duties (三员分立, issue 12)
ADMIN_IMPLIES = frozenset({USERS_MANAGE, SHARES_MANAGE, OPERATIONS})
MANAGES_USERS = frozenset({ADMIN, USERS_MANAGE})
REPORTING_LEVELS = ("junior", "reporting", "reviewing")

# name -> (permissions, platform-wide, description)
DEFAULT_ROLES: dict[str, tuple[frozenset[str], bool, str]] = {
    "super_admin": (frozenset({ADMIN, BREAK_GLASS}), True, "hospitals, roles and every hospital's users"),
    "operations_admin": (frozenset({OPERATIONS, BREAK_GLASS}), True, "service operation, no patient data"),
    "hospital_admin": (frozenset({USERS_MANAGE}), False, "one hospital's users and registrations"),
    "department_admin": (frozenset({USERS_MANAGE}), False, "one department's users"),
    "security_admin": (frozenset({SECURITY_MANAGE}), False, "API keys, launch secrets, revocation"),
    "audit_admin": (frozenset({AUDIT_READ}), False, "reads the audit trail"),
    "doctor": (frozenset({DICOMWEB_READ, DOWNLOAD, SHARES_MANAGE}), False, "views and shares studies"),
    "radiologist": (frozenset({DICOMWEB_READ, DOWNLOAD, SHARES_MANAGE, REPORT_WRITE}), False,
                    "reads and reports; reporting level junior | reporting | reviewing"),
    "qc_expert": (frozenset({DICOMWEB_READ, QC_REVIEW}), False, "scores image quality"),
    "patient": (frozenset({DICOMWEB_READ, DOWNLOAD}), False, "own studies through patient tokens"),
    "system_client": (frozenset({DICOMWEB_READ, DICOMWEB_WRITE}), False, "PACS, RIS, HIS, engines"),
    "delivery_operator": (frozenset({DELIVERY}), False, "patient delivery console: exams, access log"),
    # one person across hospitals: platform-wide, demographics of every hospital's identities,
    # no images (no dicomweb.read)
    "data_steward": (frozenset({MPI_MANAGE}), True, "patient master index: reviews, links, code table"),
}


class SeparationOfDuties(Forbidden):
    """A role (or a user's set of roles) would hold two of the system, security and audit
    administrators' duties."""


def effective(permissions: frozenset[str]) -> frozenset[str]:
    """Permissions with what `admin` implies added."""
    return permissions | ADMIN_IMPLIES if ADMIN in permissions else permissions


DUTIES = {"system administration": MANAGES_USERS, "security administration": frozenset({SECURITY_MANAGE}),
          "audit": frozenset({AUDIT_READ})}


def check_separation(permissions: frozenset[str], what: str) -> None:
    """Refuse a set of permissions holding two of the three administrators' duties: managing
    users, setting the security policy, reading the audit trail (GB/T 22239 三员分立)."""
    held = [name for name, perms in DUTIES.items() if permissions & perms]
    if len(held) > 1:
        raise SeparationOfDuties(f"{what} would hold both {held[0]} and {held[1]}")


def check_permissions(permissions: frozenset[str]) -> None:
    """Refuse unknown permission names."""
    unknown = sorted(str(p) for p in permissions - PERMISSIONS)
    if unknown:
        raise InvalidRequest(f"unknown permission(s): {', '.join(unknown)}")
