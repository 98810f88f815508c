"""The app-state store on PostgreSQL (issue 11: "the same code must later run on PostgreSQL").

`YUNYING_TEST_POSTGRES` is a SQLAlchemy URL of a database we may create databases from
(tools/test.sh starts a throwaway cluster and sets it). Each test gets a database of its own.
Every registered migration runs there, then the store is used only through its public
functions, and at last a real `yunying serve` keeps its app state there.
"""
from __future__ import annotations

import base64
import secrets
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pyotp
import pytest
from sqlalchemy import inspect, select, text

import yunying.audit.syslog  # registers the audit component's migrations
import yunying.auth.oidc.tables  # registers the oidc component's migrations
import yunying.portal.schema  # registers the portal component's migrations
from tests.auth.signin import sign_in
from tests.conftest import start_with_env
from yunying import pii
from yunying.audit import store as audit_store
from yunying.audit.trail import Trail
from yunying.auth import (
    directory,
    grants,
    keys,
    launch,
    passwords,
    schema,
    secpolicy,
    throttle,
    tokens,
    totp,
)
from yunying.auth import store as store_mod
from yunying.auth.errors import BadCredentials, Conflict, Forbidden, InvalidRequest
from yunying.auth.identify import Identifier, InvalidToken
from yunying.auth.oidc.store import ClientError, OAuthStore
from yunying.auth.roles import SeparationOfDuties
from yunying.auth.store import Store, open_store, schema_migrations
from yunying.portal import exams as portal_exams
from yunying.portal import verify as portal_verify


@pytest.fixture
def pg(pg_url: str, tmp_path: Path) -> Iterator[Store]:
    store = open_store(tmp_path / "data", pg_url)
    assert store.engine.dialect.name == "postgresql"
    directory.ensure_defaults(store)
    yield store
    store.engine.dispose()


def test_every_registered_migration_runs_on_postgresql(pg: Store) -> None:
    registered = set(store_mod._MIGRATIONS)
    assert {("auth", 1), ("auth", 2), ("oidc", 1), ("portal", 1), ("portal", 3), ("audit", 2)} <= registered
    with pg.engine.connect() as conn:
        done = {(r.component, r.version) for r in conn.execute(select(schema_migrations))}
    assert registered <= done
    tables = set(inspect(pg.engine).get_table_names())
    assert {"users", "capability_tokens", "login_failures", "oauth_clients", "portal_exams",
            "portal_downloads", "audit_records", "audit_forward"} <= tables
    size = next(c for c in inspect(pg.engine).get_columns("portal_downloads") if c["name"] == "size")
    assert str(size["type"]) == "BIGINT"  # a ZIP of a large study passes 2 GiB
    assert pg.migrate() == []  # idempotent
    assert pg.generation() == -1  # no shared revocation stamp: identities are never cached


def test_hospitals_users_passwords_and_lockout(pg: Store) -> None:
    directory.add_hospital(pg, "h2", "第二医院")
    assert {"default", "h2"} <= {h["id"] for h in directory.list_hospitals(pg)}
    dep = directory.add_department(pg, "h2", "放射科")
    assert isinstance(dep, int)
    directory.add_user(pg, "li", "h2", "correct horse 1", display_name="李医生", department=dep,
                       roles=[("doctor", None)], must_change_password=False)
    with pytest.raises(Conflict):
        directory.add_user(pg, "li", "h2", "another one 12")
    user = directory.get_user(pg, "li")
    assert user["display_name"] == "李医生" and user["department_id"] == dep and user["disabled"] is False
    assert passwords.authenticate(pg, "li", "correct horse 1")["username"] == "li"
    assert [u["username"] for u in directory.list_users(pg, q="李")] == ["li"]
    for _ in range(secpolicy.DEFAULT.lockout_failures - 1):
        with pytest.raises(BadCredentials, match="wrong"):
            passwords.authenticate(pg, "li", "nope")
    with pytest.raises(passwords.Locked):  # the failure that locks says so at once
        passwords.authenticate(pg, "li", "nope")
    with pytest.raises(BadCredentials, match="too many"):  # locked, even with the right password
        passwords.authenticate(pg, "li", "correct horse 1")
    passwords.reset_password(pg, "li", "a new password 2")  # an admin's reset unlocks
    assert passwords.authenticate(pg, "li", "a new password 2")["must_change_password"] is True
    directory.update_user(pg, "li", disabled=True)
    with pytest.raises(BadCredentials):
        passwords.authenticate(pg, "li", "a new password 2")


def test_parallel_wrong_passwords_all_count(pg: Store) -> None:
    directory.add_user(pg, "wang", password="correct horse 1", must_change_password=False)
    barrier = threading.Barrier(4)

    def guess() -> None:
        barrier.wait()
        with pytest.raises(BadCredentials):
            passwords.authenticate(pg, "wang", "wrong")

    threads = [threading.Thread(target=guess) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    with pg.engine.connect() as conn:
        failures = conn.execute(text("SELECT failures FROM login_failures WHERE username = 'wang'")).scalar_one()
    assert failures == 4


def test_roles_keep_separation_of_duties(pg: Store) -> None:
    directory.save_role(pg, "auditor", ["audit.read"], "reads the trail")
    directory.save_role(pg, "manager", ["users.manage"])
    with pytest.raises(SeparationOfDuties):
        directory.save_role(pg, "both", ["audit.read", "users.manage"])
    directory.add_user(pg, "zhao", roles=[("auditor", None)])
    with pytest.raises(SeparationOfDuties):
        directory.assign_role(pg, "zhao", "default", "manager")
    with pytest.raises(SeparationOfDuties):  # changing a held role is checked against its holders
        directory.save_role(pg, "auditor", ["audit.read", "users.manage"], create=False)
    assert next(r for r in directory.list_roles(pg, "auditor"))["permissions"] == ["audit.read"]
    with pytest.raises(Conflict):
        directory.delete_role(pg, "auditor")
    directory.remove_role(pg, "zhao", "default", "auditor")
    directory.delete_role(pg, "auditor")


def test_api_keys_and_the_identifier(pg: Store) -> None:
    key_id, secret = keys.create_key(pg, "ris", ["dicomweb.read"])
    ident = Identifier(pg)
    assert ident.identify(secret).permissions >= {"dicomweb.read"}
    with pytest.raises(Conflict):
        keys.create_key(pg, "ris", ["dicomweb.read"])
    keys.provision(pg, keys.ENV_KEY_NAME, "x" * 24, keys.FULL_SCOPE, "default", "env")
    keys.provision(pg, keys.ENV_KEY_NAME, "y" * 24, keys.FULL_SCOPE, "default", "env")  # replaced in place
    assert "admin" in ident.identify("y" * 24).permissions
    keys.revoke_key(pg, key_id)
    with pytest.raises(InvalidToken):
        ident.identify(secret)  # revoked: seen at once (no cache on PostgreSQL)


def test_capability_token_code_lockout_is_counted_atomically(pg: Store) -> None:
    tid, token = tokens.create_capability(pg, created_by="li", hospital="default", studies=["1.2.3"],
                                          permissions=["view", "download"], code="2468")
    barrier = threading.Barrier(tokens.MAX_CODE_FAILURES)

    def guess() -> None:
        barrier.wait()
        with pytest.raises((BadCredentials, Forbidden)):
            tokens.exchange(pg, token, "0000")

    threads = [threading.Thread(target=guess) for _ in range(tokens.MAX_CODE_FAILURES)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    with pytest.raises(Forbidden, match="too many"):  # every parallel guess counted: locked
        tokens.exchange(pg, token, "2468")
    tid2, token2 = tokens.create_capability(pg, created_by="li", hospital="default", studies=["1.2.4"])
    got = tokens.exchange(pg, token2)
    assert got["studies"] == ["1.2.4"]
    ident = Identifier(pg)
    assert ident.identify(got["access_token"]).visibility.studies == frozenset({"1.2.4"})
    assert {c["id"] for c in tokens.list_capabilities(pg, "default")} == {tid, tid2}
    tokens.revoke_capability(pg, tid2)
    with pytest.raises(InvalidToken):
        ident.identify(got["access_token"])


def test_grants_and_launch_replay(pg: Store) -> None:
    dep = directory.add_department(pg, "default", "CT")
    directory.add_user(pg, "sun", department=dep)
    g1 = grants.share(pg, created_by="li", study="1.2.3", username="sun", expires_in=3600)
    g2 = grants.share(pg, created_by="li", study="1.2.4", series="1.2.4.1", department=dep)
    assert g2 > g1  # autoincrement ids
    assert [g["id"] for g in grants.list_grants(pg, "li")] == [g1, g2]
    grants.revoke(pg, g1, "li")
    assert [g["id"] for g in grants.list_grants(pg)] == [g2]
    secret = launch.rotate_secret(pg, "default")
    params = launch.sign(secret, "default", "sun", study="1.2.3")
    assert launch.redeem(pg, params)["study"] == "1.2.3"
    with pytest.raises(BadCredentials, match="used already"):
        launch.redeem(pg, params)


def test_a_grant_counts_and_stops_at_once_in_another_server_on_the_same_database(
        pg: Store, pg_url: str, tmp_path: Path) -> None:
    """Two servers (two data folders) on one database share no revocation stamp: the identity
    cache is off on PostgreSQL, so a grant made, revoked or expired through one is felt by the
    other's very next request."""
    other = open_store(tmp_path / "other", pg_url)
    try:
        directory.add_user(pg, "zhou")
        token, _ = tokens.issue_access_token(pg, kind="user", subject="zhou", hospital="default")
        seen = Identifier(pg)
        assert seen.identify(token).visibility.studies == frozenset()
        g = grants.share(other, created_by="li", study="1.2.9", username="zhou")
        assert seen.cached(token) is None and seen.identify(token).visibility.studies == {"1.2.9"}
        grants.revoke(other, g)
        assert seen.cached(token) is None and seen.identify(token).visibility.studies == frozenset()
        grants.share(other, created_by="li", study="1.2.9", username="zhou", expires_in=1)
        assert seen.identify(token).visibility.studies == {"1.2.9"}
        time.sleep(2.1)  # expires_at is whole seconds
        assert seen.identify(token).visibility.studies == frozenset()
    finally:
        other.engine.dispose()


def test_oidc_codes_and_refresh_rotation_with_reuse_detection(pg: Store) -> None:
    oauth = OAuthStore(pg)
    cid, csecret = oauth.add_client("viewer", ["https://v.example/cb"], "openid", ["authorization_code",
                                                                                  "refresh_token"], False, "default")
    assert csecret and oauth.get_client(cid) is not None and [c.client_id for c in oauth.list_clients()] == [cid]
    now = int(time.time())
    oauth.save_code("code-1", cid, "li", "https://v.example/cb", "openid", None, None, None, now)
    found = oauth.find_code("code-1", cid)
    assert found is not None
    family = oauth.new_family(cid, "li")
    assert oauth.claim_code(found.code_hash, family) and not oauth.claim_code(found.code_hash, family)
    oauth.save_refresh("r1", family, cid, "li", "openid", 3600)
    r1 = oauth.find_refresh("r1")
    assert r1 is not None and not r1.revoked
    assert oauth.rotate_refresh(r1.token_hash) and not oauth.rotate_refresh(r1.token_hash)
    oauth.save_refresh("r2", family, cid, "li", "openid", 3600)
    reused = oauth.find_refresh("r1")  # a rotated token again: the whole family is revoked
    assert reused is not None and reused.revoked
    r2 = oauth.find_refresh("r2")
    assert r2 is not None and r2.revoked and oauth.is_revoked(None, family)
    assert oauth.find_code("code-1", cid) is None  # used code: refused
    oauth.revoke_access("jti-1", now + 60)
    oauth.revoke_access("jti-1", now + 60)
    assert oauth.is_revoked("jti-1", None)
    cookie = oauth.create_session("li", "password")
    session = oauth.get_session(cookie)
    assert session is not None and session.must_change_password is True
    oauth.set_stage(cookie, "")
    session = oauth.get_session(cookie)
    assert session is not None and session.complete
    oauth.end_session(cookie)
    assert oauth.get_session(cookie) is None and oauth.remove_client(cid)


def test_times_are_64_bit_integers_past_2038(pg: Store) -> None:
    types = {(r.table_name, r.column_name): r.data_type for r in pg.engine.connect().execute(text(
        "SELECT table_name, column_name, data_type FROM information_schema.columns WHERE table_schema = 'public'"))}
    for column in (("users", "created_at"), ("capability_tokens", "expires_at"), ("oauth_refresh_tokens", "expires_at"),
                   ("oauth_sessions", "auth_time"), ("login_failures", "locked_until"), ("password_history", "changed_at")):
        assert types[column] == "bigint", column
    with pg.engine.begin() as conn:  # the 22nd century fits
        conn.execute(schema.grants.insert().values(study_uid="1.2.3", created_by="x", created_at=2**33,
                                                   expires_at=2**33 + 1))
        assert conn.execute(select(schema.grants.c.expires_at)).scalar() == 2**33 + 1


def test_a_store_made_with_32_bit_times_is_widened(pg: Store) -> None:
    from sqlalchemy import Column, Integer, MetaData, Table

    old = Table("old_times", MetaData(), Column("id", Integer, primary_key=True), Column("expires_at", Integer),
                Column("failures", Integer))
    with pg.engine.begin() as conn:
        old.create(conn)
        schema.widen_times(conn, [old])
    with pg.engine.connect() as conn:
        types: dict[str, str] = {r.column_name: r.data_type for r in conn.execute(text(
            "SELECT column_name, data_type FROM information_schema.columns WHERE table_name = 'old_times'"))}
    assert types == {"id": "integer", "expires_at": "bigint", "failures": "integer"}  # times only


def test_security_policy_history_second_factor_and_throttle(pg: Store) -> None:
    directory.add_user(pg, "sec", "default", "Correct horse 1", must_change_password=False)
    policy, diff = secpolicy.save(pg, {"password_min_length": 12, "totp_others": False}, "sec")
    assert policy.password_min_length == 12 and diff["password_min_length"] == (8, 12)
    assert secpolicy.load(pg) == policy
    with pytest.raises(secpolicy.PasswordWeak, match="12"):
        passwords.change_password(pg, "sec", "Correct horse 1", "Short pw 2")
    passwords.change_password(pg, "sec", "Correct horse 1", "Correct horse 22")
    with pytest.raises(secpolicy.PasswordWeak, match="last"):  # history
        passwords.change_password(pg, "sec", "Correct horse 22", "Correct horse 1")
    secret = totp.begin(pg, "sec")
    codes = totp.confirm(pg, "sec", pyotp.TOTP(secret).now())
    assert codes is not None and len(codes) == 10 and totp.enrolled(pg, "sec")
    assert totp.verify(pg, "sec", codes[0]) == "recovery" and totp.verify(pg, "sec", codes[0]) is None
    for _ in range(secpolicy.DEFAULT.address_failures):
        throttle.failed(pg, "192.0.2.7")
    with pytest.raises(throttle.TooManyAttempts):
        throttle.check(pg, "192.0.2.7")
    throttle.check(pg, "192.0.2.8")
    resend = throttle.Limit("sms.resend", 1, 60, 60)  # the portal's limits share the table, keyed apart
    assert throttle.failed(pg, "phone-hash", resend) == 60
    with pytest.raises(throttle.TooManyAttempts):
        throttle.check(pg, "phone-hash", resend)
    throttle.check(pg, "phone-hash")  # the same subject under the address limit: not blocked
    throttle.clear(pg, "phone-hash", resend)
    throttle.check(pg, "phone-hash", resend)


def test_portal_exam_codes_and_binding(pg: Store) -> None:
    key, pii_keys = secrets.token_bytes(32), pii.parse(pii.new_key_line("blind") + pii.new_key_line("seal", "k1"))
    contact = portal_exams.Contact(phone="13800138000")
    first = portal_exams.issue_exam(pg, key, pii_keys, hospital="default", study="1.2.9", accession="A1", contact=contact,
                                    created_by="ris")
    again = portal_exams.issue_exam(pg, key, pii_keys, hospital="default", study="1.2.9", accession="A1", contact=contact,
                                    created_by="ris")
    assert first["created"] and not again["created"] and again["token"] == first["token"]
    exam = portal_exams.exam_of_token(pg, first["token"])
    account = portal_verify._bind(pg, "p_test", "phone", "8000", exam, int(time.time()),
                                  yunying.portal.schema.exams.c.phone_hash == exam.phone_hash)
    assert [e["study"] for e in portal_verify.account_exams(pg, account)] == ["1.2.9"]
    portal_exams.set_delivery(pg, "default", "1.2.9", False)
    assert portal_verify.account_exams(pg, account) == []


def test_too_long_values_are_refused_not_a_database_error(pg: Store) -> None:
    with pytest.raises(InvalidRequest, match="display_name"):
        directory.add_user(pg, "u1", display_name="x" * 201)
    with pytest.raises(InvalidRequest, match="title"):
        directory.add_user(pg, "u1", title="x" * 101)
    directory.add_user(pg, "u1", phone="1" * 40)
    with pytest.raises(InvalidRequest, match="phone"):
        directory.update_user(pg, "u1", phone="1" * 41)
    with pytest.raises(InvalidRequest, match="name"):
        directory.add_hospital(pg, "h3", "医" * 201)
    with pytest.raises(InvalidRequest, match="description"):
        directory.save_role(pg, "r1", ["dicomweb.read"], "x" * 301)
    with pytest.raises(InvalidRequest, match="label"):
        tokens.create_capability(pg, created_by="u1", hospital="default", studies=["1.2"], label="x" * 201)
    with pytest.raises(InvalidRequest, match="accession"):
        portal_exams.issue_exam(pg, b"k" * 32, pii.parse(pii.new_key_line("blind") + pii.new_key_line("seal", "k1")),
                                hospital="default", study="1.2.3", accession="A" * 65,
                                contact=portal_exams.Contact(), created_by="ris")
    with pytest.raises(ClientError, match="name"):
        OAuthStore(pg).add_client("x" * 201, [], "openid", ["client_credentials"], False, "default")
    assert directory.get_user(pg, "u1")["phone"] == "1" * 40  # nothing stored touched


def test_the_audit_trail_chains_on_postgresql(pg: Store) -> None:
    key = secrets.token_bytes(32)
    trail = Trail(pg.engine, key)
    try:
        trail.submit({"principal_kind": "user", "principal_id": "li", "action": "qido", "status": "200"})
        trail.submit({"principal_kind": "user", "principal_id": "s" * 300, "action": "wado", "status": "200",
                      "client": "c" * 300, "studies": ["1.2.3", "1.2.4"]})  # an external IdP's long subject
        last = trail.submit({"principal_kind": "peer", "principal_id": "CT1", "face": "dimse",
                             "action": "c-store", "status": "0x0000"}).result(30)
    finally:
        trail.close()
    assert last == 3
    assert audit_store.verify(pg.engine, key) == (3, [])
    found = audit_store.search(pg.engine, principal="li")
    assert [r["action"] for r in found] == ["qido"]


def test_yunying_serve_keeps_its_app_state_on_postgresql(pg_url: str, tmp_path: Path) -> None:
    server = start_with_env(tmp_path / "data", YUNYING_APP_DATABASE=pg_url,
                            YUNYING_ADMIN_PASSWORD="first admin pw 1")
    try:
        with httpx.Client(base_url=server.http_url, timeout=30) as http:
            key = server.headers  # the API key start_yunying provisions (YUNYING_API_KEY)
            add = http.post("/api/admin/users", headers=key, json={
                "username": "doc", "hospital": "default", "password": "doctor pw 123", "roles": [{"role": "doctor"}]})
            assert add.status_code == 201, add.text
            bearer = sign_in(server.http_url, "doc", "doctor pw 123", new_password="Radiology pw 456").headers
            studies = server.dicomweb_url + "/studies"
            assert http.get(studies, headers=bearer).status_code == 200
            assert http.get(studies, headers=key).status_code == 200
            assert http.get(studies).status_code == 401
            assert http.get(studies, headers={"Authorization": "Bearer not-a-token"}).status_code == 401
        assert not (tmp_path / "data" / "app.sqlite").exists()
    finally:
        server.stop()
    probe = open_store(tmp_path / "probe", pg_url)  # what the server wrote is in PostgreSQL
    try:
        assert directory.get_user(probe, "doc")["must_change_password"] is False
        assert keys.ENV_KEY_NAME in {k["name"] for k in keys.list_keys(probe)}
    finally:
        probe.engine.dispose()


def test_sealed_registrations_fit_and_reseal_on_postgresql(pg: Store) -> None:
    from yunying.auth import registrations

    keys = pii.parse(pii.new_key_line("blind") + pii.new_key_line("seal", "k1"))
    png = b"\x89PNG\r\n\x1a\n" + b"\x00" * 16
    reg = registrations.submit(pg, keys, username="dr.pg", password="Pg-password-1", display_name="Dr",
                               phone="1" * 40, hospital="default",  # sealed: ~100 characters (pii migration 1)
                               photos=[("id_card", "image/png", png), ("qualification", "image/png", png)])
    assert registrations.get(pg, keys, reg)["phone"] == "1" * 40
    rotated = pii.parse(pii.new_key_line("blind") + pii.new_key_line("seal", "k1").replace("k1", "k0")
                        + "seal k1 " + base64.b64encode(keys.seal_keys[0][1]).decode() + "\n"
                        + pii.new_key_line("seal", "k2"))
    changed = pii.reseal_all(pg.engine, rotated)
    assert changed["registrations.phone"] == 1 and changed["registration_photos.data"] == 2
    assert registrations.get(pg, rotated, reg)["phone"] == "1" * 40
    assert registrations.photo(pg, rotated, reg, registrations.list_pending(pg, rotated)[0]["photos"][0]["id"])[1] == png
