"""Part 2's limits on the shared throttle (yunying.auth.throttle, issue 12 part 4): codes asked per
address, wrong codes per phone, wrong answers per address shared with the login page; counted in
the store, so a restarted (or another) process sees the same counts."""
from __future__ import annotations

import httpx

from benchmarks.net import YunyingServer, start_yunying
from tests.portal.conftest import issue, last_code, store_study


def client(address: str) -> httpx.Client:
    """A client from its own loopback address, so each test's address counts start at zero."""
    return httpx.Client(timeout=30, transport=httpx.HTTPTransport(local_address=address))


def post(http: httpx.Client, srv: YunyingServer, path: str, body: dict) -> httpx.Response:
    return http.post(srv.http_url + "/api/portal/" + path, json=body)


def test_codes_asked_from_one_address_are_limited(srv: YunyingServer) -> None:
    phones = [f"1370000{i:04d}" for i in range(11)]
    tokens = [issue(srv, study=store_study(srv), phone=p).json()["token"] for p in phones]
    with client("127.0.0.3") as http:
        for token, phone in zip(tokens[:10], phones[:10], strict=True):
            assert post(http, srv, "verify/send", {"exam": token, "phone": phone}).status_code == 200
        eleventh = post(http, srv, "verify/send", {"exam": tokens[10], "phone": phones[10]})
    assert eleventh.status_code == 429 and "from this address" in eleventh.json()["error"]
    assert 3500 < int(eleventh.headers["retry-after"]) <= 3600
    with client("127.0.0.5") as other:  # another address asks at once
        assert post(other, srv, "verify/send", {"exam": tokens[10], "phone": phones[10]}).status_code == 200
        again = post(other, srv, "verify/send", {"exam": tokens[10], "phone": phones[10]})
    assert again.status_code == 429 and 55 <= int(again.headers["retry-after"]) <= 60  # the phone's 60 s


def test_wrong_answers_count_in_the_address_throttle_of_the_login_page(srv: YunyingServer) -> None:
    exams = [issue(srv, study=store_study(srv), id_number=f"1101051949123100{i}X", name="张三").json()["token"]
             for i in range(5)]
    with client("127.0.0.8") as http:
        for token in exams:  # 4 wrong answers per exam (none locks), 20 from this address
            for _ in range(4):
                r = post(http, srv, "verify/id", {"exam": token, "id_number": "110105194912310099", "name": "李四"})
                assert r.status_code == 401, r.text
        blocked = post(http, srv, "verify/id", {"exam": exams[0], "id_number": "11010519491231000X", "name": "张三"})
        assert blocked.status_code == 429 and int(blocked.headers["retry-after"]) > 14 * 60  # even the right answer
        share = http.post(srv.http_url + "/api/auth/exchange", json={"token": "ycap_x", "code": "0000"})
        assert share.status_code == 429  # the one throttle of the login page and of access codes
    with client("127.0.0.9") as other:
        ok = post(other, srv, "verify/id", {"exam": exams[0], "id_number": "11010519491231000X", "name": "张三"})
        assert ok.status_code == 200, ok.text


def test_a_locked_phone_stays_locked_across_a_restart(srv: YunyingServer) -> None:
    """Last in this module: it restarts the server."""
    phone = "13700001111"
    token = issue(srv, study=store_study(srv), phone=phone).json()["token"]
    with client("127.0.0.6") as http:
        assert post(http, srv, "verify/send", {"exam": token, "phone": phone}).status_code == 200
        code = last_code(srv, phone)
        bad = f"{(int(code) + 1) % 10 ** 6:06d}"
        answers = [post(http, srv, "verify/sms", {"exam": token, "phone": phone, "code": bad}).status_code
                   for _ in range(5)]
    assert answers == [401, 401, 401, 401, 403]
    srv.stop()  # the count is in the store, not in the process that counted
    again = start_yunying(srv.data_dir, api_key=srv.api_key)
    try:
        with client("127.0.0.7") as http:  # nor per address: another one is refused too
            locked = post(http, again, "verify/sms", {"exam": token, "phone": phone, "code": code})
            assert locked.status_code == 403 and "too many" in locked.json()["error"]
            resend = post(http, again, "verify/send", {"exam": token, "phone": phone})
            assert resend.status_code == 403  # no new code for a locked phone either
        with client("127.0.0.3") as http:  # the first test's address still waits (it was in memory once)
            fresh = issue(again, study=store_study(again), phone="13700002222").json()["token"]
            refused = post(http, again, "verify/send", {"exam": fresh, "phone": "13700002222"})
            assert refused.status_code == 429 and "from this address" in refused.json()["error"]
    finally:
        srv.proc = again.proc  # the module's fixture stops the new process
