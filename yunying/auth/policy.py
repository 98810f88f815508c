"""The policy table: every HTTP route (method + path pattern) and the action it needs.

Deny by default: a request that matches no row is refused (401 without credentials, 403 with
them), and tests/auth/test_route_table.py walks the built app's routes so that a route added
without a row here fails the suite. The routes anyone may call are the OPEN_ROUTES table, and
only those. First match wins; HEAD is checked as GET. Patterns use Starlette's syntax
(`{name}` is one segment, `{name:path}` the rest).

Study-level visibility (404 outside the caller's scope) is decided later, in the index query,
from `request.state.principal.visibility`; this table decides what kind of act is allowed.
"""
from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from yunying.auth import roles as R
from yunying.auth.principal import (
    ADMIN,
    DICOMWEB_DELETE,
    DICOMWEB_READ,
    DICOMWEB_WRITE,
    DOWNLOAD,
    Principal,
)

OPEN = "open"
AUTHENTICATED = "authenticated"  # any identified caller (its own profile, password change...)
RETRIEVE = "retrieve"  # whole DICOM objects: dicomweb.read, and `download` for share/patient tokens
PREFLIGHT = "PREFLIGHT"  # an OPTIONS request with Access-Control-Request-Method (CORS, issue 11 part 9)

# The only routes open to anonymous callers: discovery, login, static assets, health, preflight.
# Static pages carry no patient data; a front end's own state API lives under /api/ (never open).
OPEN_ROUTES: list[tuple[str, str]] = [
    (PREFLIGHT, "/{path:path}"),
    ("GET", "/health"),
    ("GET", "/.well-known/{path:path}"),  # OIDC discovery and JWKS (branch oidc)
    ("GET", "/oauth/authorize"), ("POST", "/oauth/authorize"),  # login page of the provider
    ("POST", "/oauth/token"), ("POST", "/oauth/revoke"), ("POST", "/oauth/introspect"),  # client auth inside
    ("GET", "/oauth/jwks"),  # the provider's public keys
    ("OPTIONS", "/oauth/{path:path}"), ("OPTIONS", "/.well-known/{path:path}"),  # the provider's CORS answers
    ("GET", "/login"), ("GET", "/login/{path:path}"),
    ("POST", "/login"), ("POST", "/login/{path:path}"),  # the provider's login, password change, logout
    ("POST", "/api/auth/exchange"),  # a capability token (+ code) -> a short access token
    ("POST", "/api/auth/register"),  # a doctor's self-registration (reviewed by a hospital admin)
    ("GET", "/launch"),  # a signed launch link: its signature is the credential
    ("GET", "/i18n/{path:path}"), ("GET", "/common/{path:path}"),  # catalogs, shared ES modules
    ("GET", "/viewer"), ("GET", "/viewer/{path:path}"),
    ("GET", "/admin"), ("GET", "/admin/{path:path}"),
    ("GET", "/portal"), ("GET", "/portal/{path:path}"),
    # the patient portal: the exam token or share token in the body is the credential (issue 14)
    ("POST", "/api/portal/verify/{step}"),
]

DW = "/dicomweb"
S, SE, I = DW + "/studies/{study}", "/series/{series}", "/instances/{sop}"
POLICY: list[tuple[str, str, str | tuple[str, ...]]] = [
    # DICOMweb (PS3.18): whole objects, then every other read, writes, deletes
    ("GET", S, RETRIEVE), ("GET", S + SE, RETRIEVE), ("GET", S + SE + I, RETRIEVE),
    ("GET", DW + "/{path:path}", DICOMWEB_READ), ("GET", DW, DICOMWEB_READ),
    ("OPTIONS", DW, DICOMWEB_READ), ("OPTIONS", DW + "/{path:path}", DICOMWEB_READ),  # Allow, capabilities
    ("POST", DW + "/studies", DICOMWEB_WRITE), ("POST", S, DICOMWEB_WRITE),
    ("DELETE", S, DICOMWEB_DELETE), ("DELETE", S + SE, DICOMWEB_DELETE), ("DELETE", S + SE + I, DICOMWEB_DELETE),
    # the caller itself
    ("GET", "/api/auth/me", AUTHENTICATED),
    ("POST", "/api/auth/logout", AUTHENTICATED),
    ("POST", "/api/auth/break-glass", R.BREAK_GLASS),
    ("GET", "/oauth/userinfo", AUTHENTICATED), ("POST", "/oauth/userinfo", AUTHENTICATED),  # OIDC Core 5.3
    # administration: handlers narrow further (a hospital admin acts on their own hospital only)
    ("GET", "/api/admin/hospitals", (ADMIN, R.USERS_MANAGE, R.SECURITY_MANAGE)),
    ("POST", "/api/admin/hospitals", ADMIN),
    ("GET", "/api/admin/hospitals/{hospital}/departments", (ADMIN, R.USERS_MANAGE)),
    ("POST", "/api/admin/hospitals/{hospital}/departments", (ADMIN, R.USERS_MANAGE)),
    ("PUT", "/api/admin/hospitals/{hospital}/launch-secret", (ADMIN, R.SECURITY_MANAGE)),
    ("GET", "/api/admin/roles", (ADMIN, R.USERS_MANAGE)),
    ("POST", "/api/admin/roles", ADMIN),
    ("PUT", "/api/admin/roles/{role}", ADMIN),
    ("DELETE", "/api/admin/roles/{role}", ADMIN),
    ("GET", "/api/admin/users", (ADMIN, R.USERS_MANAGE)),
    ("POST", "/api/admin/users", (ADMIN, R.USERS_MANAGE)),
    ("GET", "/api/admin/users/{username}", (ADMIN, R.USERS_MANAGE)),
    ("PATCH", "/api/admin/users/{username}", (ADMIN, R.USERS_MANAGE)),
    ("DELETE", "/api/admin/users/{username}", (ADMIN, R.USERS_MANAGE)),
    ("POST", "/api/admin/users/{username}/password", (ADMIN, R.USERS_MANAGE)),
    ("PUT", "/api/admin/users/{username}/roles/{hospital}/{role}", (ADMIN, R.USERS_MANAGE)),
    ("DELETE", "/api/admin/users/{username}/roles/{hospital}/{role}", (ADMIN, R.USERS_MANAGE)),
    ("GET", "/api/admin/oauth-clients", (ADMIN, R.SECURITY_MANAGE)),  # handlers narrow to the hospital
    ("POST", "/api/admin/oauth-clients", (ADMIN, R.SECURITY_MANAGE)),
    ("DELETE", "/api/admin/oauth-clients/{client_id}", (ADMIN, R.SECURITY_MANAGE)),
    ("GET", "/api/admin/api-keys", (ADMIN, R.SECURITY_MANAGE)),
    ("POST", "/api/admin/api-keys", (ADMIN, R.SECURITY_MANAGE)),
    ("DELETE", "/api/admin/api-keys/{key}", (ADMIN, R.SECURITY_MANAGE)),
    ("GET", "/api/admin/capability-tokens", (ADMIN, R.SECURITY_MANAGE, R.SHARES_MANAGE)),
    ("POST", "/api/admin/capability-tokens", (ADMIN, R.SHARES_MANAGE)),
    ("DELETE", "/api/admin/capability-tokens/{token}", (ADMIN, R.SECURITY_MANAGE, R.SHARES_MANAGE)),
    ("GET", "/api/admin/grants", (ADMIN, R.SHARES_MANAGE)),
    ("POST", "/api/admin/grants", (ADMIN, R.SHARES_MANAGE)),
    ("DELETE", "/api/admin/grants/{grant}", (ADMIN, R.SHARES_MANAGE)),
    # the security administrator's (issue 12 part 5): only security.manage changes the policy
    ("GET", "/api/admin/security-policy", (ADMIN, R.SECURITY_MANAGE, R.AUDIT_READ)),
    ("PUT", "/api/admin/security-policy", R.SECURITY_MANAGE),
    ("GET", "/api/admin/users/{username}/second-factor", (ADMIN, R.SECURITY_MANAGE)),
    ("DELETE", "/api/admin/users/{username}/second-factor", R.SECURITY_MANAGE),
    ("GET", "/api/admin/registrations", (ADMIN, R.USERS_MANAGE)),
    ("GET", "/api/admin/registrations/{reg}/photos/{photo}", (ADMIN, R.USERS_MANAGE)),
    ("POST", "/api/admin/registrations/{reg}/approve", (ADMIN, R.USERS_MANAGE)),
    ("POST", "/api/admin/registrations/{reg}/reject", (ADMIN, R.USERS_MANAGE)),
    # the audit trail (issue 12): the audit admin only (separation of duties: not `admin`)
    ("GET", "/api/audit/mine", AUTHENTICATED),  # a patient's own access list (the handler checks the kind)
    ("GET", "/api/audit/{path:path}", R.AUDIT_READ),
    ("GET", "/api/security/statement", (ADMIN, R.SECURITY_MANAGE, R.AUDIT_READ)),  # MLPS statement (assessors)
    # the patient portal (issue 14): the PACS/RIS asks for exam QR codes; patients (handlers check) the rest
    ("POST", "/api/portal/exams", (ADMIN, DICOMWEB_WRITE)), ("POST", "/api/portal/delivery", (ADMIN, DICOMWEB_WRITE, R.DELIVERY)),
    ("POST", "/api/portal/fhir/DiagnosticReport", DICOMWEB_WRITE),  # a RIS's report, stored as DICOM
    ("GET", "/api/portal/me", AUTHENTICATED), ("POST", "/api/portal/me/exams", AUTHENTICATED),
    ("GET", "/api/portal/shares", AUTHENTICATED), ("POST", "/api/portal/shares", AUTHENTICATED),
    ("DELETE", "/api/portal/shares/{share}", AUTHENTICATED),
    # a patient's WeChat binding (issue 14 part 8): patients' tokens only (the handlers check)
    ("GET", "/api/portal/wechat", AUTHENTICATED), ("DELETE", "/api/portal/wechat", AUTHENTICATED),
    ("POST", "/api/portal/wechat/start", AUTHENTICATED), ("POST", "/api/portal/wechat/bind", AUTHENTICATED),
    ("GET", "/api/portal/film", DICOMWEB_READ), ("GET", "/api/portal/report/page", DICOMWEB_READ),  # report pages as PNG
    ("GET", "/api/portal/console/stats", (ADMIN, R.OPERATIONS, R.DELIVERY)),  # counts only, no patient data
    # the delivery console (issue 14 part 9): its hospital's exams, report preview, patients' access log
    ("GET", "/api/portal/console/exams", (ADMIN, R.DELIVERY)), ("GET", "/api/portal/console/report", (ADMIN, R.DELIVERY)),
    ("POST", "/api/portal/console/access", (ADMIN, R.DELIVERY)),  # POST: a phone never rides in a URL
    # collection, lifecycle and jobs (issue 15 parts 1, 6, 8): counts and UIDs, no patient data
    ("GET", "/api/jobs", (ADMIN, R.OPERATIONS)), ("GET", "/metrics", (ADMIN, R.OPERATIONS)),
    ("GET", "/api/collect/runs", (ADMIN, R.OPERATIONS)),
    ("POST", "/api/collect/sources/{source}/runs", (ADMIN, R.OPERATIONS)),
    ("GET", "/api/lifecycle/studies/{study}", (ADMIN, R.OPERATIONS)),
    ("POST", "/api/lifecycle/studies/{study}/delete", ADMIN),  # after retention, confirmed (handler)
    ("PUT", "/api/lifecycle/studies/{study}/protected", ADMIN),
    ("POST", "/api/lifecycle/purge", (ADMIN, R.OPERATIONS)),
    ("GET", "/api/lifecycle/refetch/{study}", DICOMWEB_READ),  # the viewer polls a purged study's re-fetch
    ("POST", "/api/portal/downloads", AUTHENTICATED), ("GET", "/api/portal/downloads/{download}", AUTHENTICATED),
    ("GET", "/api/portal/downloads/{download}/progress", AUTHENTICATED),
    # the viewer (issue 13): measurements -> a DICOM SR it then stores through STOW-RS (reads no archive data)
    ("POST", "/api/viewer/sr", DICOMWEB_WRITE),
    ("POST", "/api/viewer/export/{kind}", DICOMWEB_READ),  # packages images the viewer rendered: MP4, ZIP
    # hospital records (issue 15 parts 2-4): handlers narrow to the caller's hospitals
    ("GET", "/api/records/jobs", (ADMIN, R.OPERATIONS)),  # counts only
    ("POST", "/api/records/sources/{name}/run", (ADMIN, R.OPERATIONS)),
    ("POST", "/api/records/sources/{name}/refresh", (ADMIN, R.OPERATIONS, DICOMWEB_WRITE)),  # one patient, now
    ("GET", "/api/records/exams", (ADMIN, R.QC_REVIEW)),  # open exams to resolve the queue with
    ("GET", "/api/records/exams/{accession}", (ADMIN, DICOMWEB_READ)),  # personal data: audited
    ("GET", "/api/records/unmatched", (ADMIN, R.QC_REVIEW)),
    ("POST", "/api/records/unmatched/{study}/resolve", (ADMIN, R.QC_REVIEW)),
    ("POST", "/api/records/match", (ADMIN, R.QC_REVIEW, R.OPERATIONS)),
    ("GET", "/api/records/body-parts", (ADMIN, R.QC_REVIEW)),
    ("PUT", "/api/records/body-parts", ADMIN),
    ("GET", "/api/records/merges", ADMIN),
    ("POST", "/api/records/merges/{merge}/undo", ADMIN),  # reversing a patient merge: the admin's decision
    # patient master index (issue 15 part 5): a reader finds the person of a patient it sees; admins and data stewards the rest
    ("GET", "/api/mpi/lookup", DICOMWEB_READ),
    ("GET", "/api/mpi/{path:path}", (ADMIN, R.MPI_MANAGE)), ("POST", "/api/mpi/{path:path}", (ADMIN, R.MPI_MANAGE)),
    # routing (issue 15 part 7): rules and queue carry AE titles and UIDs, no patient data
    ("GET", "/api/routing/{path:path}", (ADMIN, R.OPERATIONS)), ("POST", "/api/routing/{path:path}", (ADMIN, R.OPERATIONS)),
    ("PUT", "/api/routing/{path:path}", (ADMIN, R.OPERATIONS)), ("DELETE", "/api/routing/{path:path}", (ADMIN, R.OPERATIONS)),
]


@dataclass(frozen=True)
class Rule:
    methods: frozenset[str]
    pattern: str
    regex: re.Pattern[str]
    action: str | tuple[str, ...]


def compile_pattern(pattern: str) -> re.Pattern[str]:
    """Starlette's path syntax as an anchored regex."""
    out, pos = "^", 0
    for m in re.finditer(r"{([a-zA-Z_]\w*)(:path)?}", pattern):
        # possessive: a segment holds no "/", so a path that does not fit fails without backtracking
        out += re.escape(pattern[pos:m.start()]) + (".*" if m.group(2) else "[^/]++")
        pos = m.end()
    return re.compile(out + re.escape(pattern[pos:]) + "$")


def compile_rules(open_routes: Iterable[tuple[str, str]] = OPEN_ROUTES,
                  policy: Iterable[tuple[str, str, str | tuple[str, ...]]] = POLICY) -> list[Rule]:
    rows = [(m, p, OPEN) for m, p in open_routes] + list(policy)
    return [Rule(frozenset({m}), p, compile_pattern(p), a) for m, p, a in rows]


def _first_segment(path: str) -> str:
    return path.split("/", 2)[1] if path.count("/") >= 1 else ""


class Rules:
    """Compiled rules, bucketed by the first path segment (a frame request tries ~5, not ~60)."""

    def __init__(self, rules: list[Rule]) -> None:
        self.rules = rules
        literal = {_first_segment(r.pattern) for r in rules if not _first_segment(r.pattern).startswith("{")}
        self.buckets = {seg: [r for r in rules if _first_segment(r.pattern) in (seg,) or
                              _first_segment(r.pattern).startswith("{")] for seg in literal}
        self.wild = [r for r in rules if _first_segment(r.pattern).startswith("{")]

    def rule_for(self, method: str, path: str, preflight: bool = False) -> Rule | None:
        """The first rule for this request, None when none (deny)."""
        method = PREFLIGHT if preflight else "GET" if method == "HEAD" else method
        for rule in self.buckets.get(_first_segment(path), self.wild):
            if method in rule.methods and rule.regex.match(path):
                return rule
        return None


RULES = Rules(compile_rules())


def allows(action: str | tuple[str, ...], principal: Principal) -> bool:
    """Whether an identified principal may perform `action` (never called for OPEN)."""
    if action == AUTHENTICATED:
        return True
    if action == RETRIEVE:
        return principal.may(DICOMWEB_READ) and (
            principal.kind not in ("share", "patient") or principal.may(DOWNLOAD))
    if isinstance(action, tuple):
        return any(principal.may(a) for a in action)
    return principal.may(action)
