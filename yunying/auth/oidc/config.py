"""The provider's settings, validated into typed values (issuer, keys, lifetimes, trusted IdPs)."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from yunying.auth.principal import DEFAULT_HOSPITAL
from yunying.settings import SettingError, Settings

MAX_ACCESS_MINUTES = 15  # issue 11: access tokens live at most 15 minutes
ASYMMETRIC = {"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}


@dataclass(frozen=True)
class TrustedIssuer:
    """A hospital's own OpenID provider whose access tokens the archive accepts."""

    issuer: str
    jwks_uri: str
    audience: str
    algorithms: tuple[str, ...] = ("RS256",)  # pinned per issuer: never taken from the token
    hospital: str = DEFAULT_HOSPITAL
    username_claim: str = "preferred_username"  # matched to our user of that username
    roles_claim: str = "roles"
    role_map: dict[str, str] = field(default_factory=dict)  # their role -> our role
    scope_claim: str = "scope"


@dataclass(frozen=True)
class OidcConfig:
    issuer: str
    key_dir: Path
    access_seconds: int
    refresh_seconds: int  # at most: the security policy's idle and absolute times end them sooner
    trusted: tuple[TrustedIssuer, ...]

    @property
    def secure(self) -> bool:
        return self.issuer.startswith("https://")


def oidc_config(settings: Settings) -> OidcConfig:
    """Read the oidc_* settings; raise SettingError naming a bad one."""
    issuer = (settings.oidc_issuer or f"http://{settings.host}:{settings.http_port}").rstrip("/")
    if not issuer.startswith(("https://", "http://")):
        raise SettingError(f"oidc_issuer: {issuer!r} is not an http(s) URL")
    minutes = settings.oidc_access_token_minutes
    if not isinstance(minutes, int) or not 1 <= minutes <= MAX_ACCESS_MINUTES:
        raise SettingError(f"oidc_access_token_minutes: {minutes!r} is not 1-{MAX_ACCESS_MINUTES}")
    if settings.oidc_refresh_token_hours <= 0:
        raise SettingError("oidc_refresh_token_hours: must be positive")
    key_dir = Path(settings.oidc_key_dir) if settings.oidc_key_dir else Path(settings.data) / "keys" / "oidc"
    trusted = tuple(_trusted(i, raw) for i, raw in enumerate(settings.oidc_trusted_issuers))
    return OidcConfig(issuer=issuer, key_dir=key_dir, access_seconds=minutes * 60,
                      refresh_seconds=settings.oidc_refresh_token_hours * 3600,
                      trusted=trusted)


def _trusted(i: int, raw: Any) -> TrustedIssuer:
    name = f"oidc_trusted_issuers[{i}]"
    if not isinstance(raw, dict):
        raise SettingError(f"{name}: expected a table with issuer, jwks_uri, audience")
    missing = [k for k in ("issuer", "jwks_uri", "audience") if not isinstance(raw.get(k), str) or not raw[k]]
    if missing:
        raise SettingError(f"{name}: missing {', '.join(missing)}")
    unknown = set(raw) - set(TrustedIssuer.__dataclass_fields__)
    if unknown:
        raise SettingError(f"{name}: unknown key(s) {', '.join(sorted(unknown))}")
    algorithms = tuple(raw.get("algorithms") or ("RS256",))
    bad = [a for a in algorithms if a not in ASYMMETRIC]
    if bad:  # HS* would let anyone holding the public JWKS forge tokens; "none" forges itself
        raise SettingError(f"{name}: algorithms {bad} refused; use asymmetric ones ({', '.join(sorted(ASYMMETRIC))})")
    role_map = raw.get("role_map") or {}
    if not isinstance(role_map, dict) or not all(isinstance(v, str) for v in role_map.values()):
        raise SettingError(f"{name}: role_map must map their role names to ours")
    return TrustedIssuer(**{**raw, "issuer": raw["issuer"].rstrip("/"), "algorithms": algorithms,
                            "role_map": dict(role_map)})
