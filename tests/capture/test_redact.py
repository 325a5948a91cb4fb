"""Redaction rules: what is replaced, what is kept, and that placeholders are stable."""

from __future__ import annotations

import gzip
import json

from hlthz.replay import CaptureRecord, Redactor
from hlthz.replay.capture.redact import luhn_valid


def _record(**kw: object) -> CaptureRecord:
    base: dict[str, object] = {"id": "1", "ts_ns": 1, "method": "POST", "path": "/", "headers": []}
    base.update(kw)
    return CaptureRecord(**base)  # type: ignore[arg-type]


def test_headers_keep_scheme_and_cookie_names() -> None:
    r = Redactor(key=b"k", extra_headers=["X-Session-Token"])
    out, stats = r.redact(
        _record(
            headers=[
                ("Authorization", "Bearer abc.def"),
                ("Cookie", "sid=s1; theme=dark"),
                ("Set-Cookie", "sid=s2; Path=/; HttpOnly"),
                ("X-Session-Token", "t0k"),
                ("Accept", "text/html"),
            ]
        )
    )
    h = dict(out.headers)
    assert h["Authorization"] == "Bearer " + r.placeholder("abc.def")
    assert h["Cookie"] == f"sid={r.placeholder('s1')}; theme={r.placeholder('dark')}"
    assert h["Set-Cookie"] == f"sid={r.placeholder('s2')}; Path=/; HttpOnly"
    assert h["X-Session-Token"] == r.placeholder("t0k")
    assert h["Accept"] == "text/html"
    assert stats.headers == {"authorization": 1, "cookie": 1, "set-cookie": 1, "x-session-token": 1}


def test_placeholders_are_stable_per_key_and_idempotent() -> None:
    a, b = Redactor(key=b"one"), Redactor(key=b"two")
    assert a.placeholder("s3cret") == a.placeholder("s3cret") != a.placeholder("other")
    assert a.placeholder("s3cret") != b.placeholder("s3cret")
    record = _record(headers=[("Authorization", "Basic Zm9v")], path="/x?token=abc")
    once, _ = a.redact(record)
    twice, stats = a.redact(once)
    assert twice == once and stats.total == 3 - 1  # re-redaction keeps the same placeholders


def test_json_fields_nested_cards_and_lengths() -> None:
    r = Redactor(key=b"k")
    body = {
        "user": {"name": "ada", "Password": "pw", "cardNumber": 4111111111111111},
        "items": [{"note": "pay with 5555 5555 5555 4444 please"}, {"id": 12345678901234}],
        "api-key": None,
    }
    out, stats = r.redact(
        _record(
            headers=[("Content-Type", "application/json"), ("Content-Length", "999")],
            body=json.dumps(body).encode(),
        )
    )
    doc = json.loads(out.body)
    assert doc["user"]["Password"] == r.placeholder("pw")
    assert doc["user"]["cardNumber"] == r.placeholder("4111111111111111")
    assert doc["items"][0]["note"] == f"pay with {r.placeholder('5555555555554444')} please"
    assert doc["items"][1]["id"] == 12345678901234  # not Luhn-valid: kept
    assert doc["api-key"] is None and doc["user"]["name"] == "ada"
    assert out.header("content-length") == str(len(out.body))
    assert stats.fields == {"Password": 1, "cardNumber": 1}
    assert stats.patterns == {"card_number": 1}


def test_form_query_and_emails() -> None:
    r = Redactor(key=b"k", emails=True, extra_fields=["otp"])
    out, _ = r.redact(
        _record(
            path="/login?next=/home&access_token=xyz",
            headers=[("Content-Type", "application/x-www-form-urlencoded; charset=utf-8")],
            body=b"email=ada%40example.com&password=pw&otp=123456&keep=1",
        )
    )
    # Untouched pairs keep their exact bytes; only the secret changes.
    assert out.path == f"/login?next=/home&access_token={r.placeholder('xyz')}"
    assert b"ada" not in out.body
    fields = dict(pair.split("=", 1) for pair in out.body.decode().split("&"))
    assert fields["password"] == r.placeholder("pw") and fields["otp"] == r.placeholder("123456")
    assert fields["keep"] == "1" and fields["email"] == r.placeholder("ada@example.com")
    plain, _ = Redactor(key=b"k").redact(_record(path="/?q=ada@example.com"))
    assert plain.path == "/?q=ada@example.com"  # e-mail scanning is opt-in


def test_gzip_body_is_redacted_and_unknown_encodings_dropped() -> None:
    r = Redactor(key=b"k")
    body = gzip.compress(b'{"token": "t"}')
    out, _ = r.redact(
        _record(
            headers=[("Content-Type", "application/json"), ("Content-Encoding", "gzip")], body=body
        )
    )
    assert json.loads(gzip.decompress(out.body)) == {"token": r.placeholder("t")}
    out, stats = r.redact(_record(headers=[("Content-Encoding", "br")], body=b"\x8b\x00opaque"))
    assert out.body == b"" and stats.patterns == {"unreadable_body": 1}


def test_binary_bodies_and_disabled_redactor_pass_through() -> None:
    record = _record(headers=[("Content-Type", "image/png")], body=bytes(range(256)))
    assert Redactor().redact(record)[0] is record
    secret = _record(headers=[("Authorization", "Bearer x")])
    assert Redactor(enabled=False).redact(secret)[0] is secret


def test_luhn() -> None:
    assert luhn_valid("4111111111111111") and luhn_valid("79927398713")
    assert not luhn_valid("4111111111111112")


def test_json_cut_by_the_body_cap_is_still_redacted() -> None:
    r = Redactor(key=b"k")
    full = json.dumps({"user": "ada", "password": "hunter2", "card_number": "4111111111111111"})
    for cut in (len(full) - 2, full.index("4111") + 10, full.index("hunter2") + 3):
        out, _ = r.redact(
            _record(headers=[("Content-Type", "application/json")], body=full[:cut].encode())
        )
        assert b"hunter" not in out.body and b"41111111111" not in out.body, cut
        assert out.body.startswith(b'{"user": "ada", "password":"[REDACTED:')


def test_multipart_form_fields_and_card_numbers_are_redacted() -> None:
    r = Redactor(key=b"k")
    body = (
        b"--XyZ\r\n"
        b'Content-Disposition: form-data; name="user"\r\n\r\nann\r\n'
        b"--XyZ\r\n"
        b'Content-Disposition: form-data; name="password"\r\n\r\nhunter2-s3cret\r\n'
        b"--XyZ\r\n"
        b'Content-Disposition: form-data; name="note"\r\n\r\npay with 4111 1111 1111 1111\r\n'
        b"--XyZ\r\n"
        b'Content-Disposition: form-data; name="file"; filename="a.bin"\r\n'
        b"Content-Type: application/octet-stream\r\n\r\n\x00\xffraw\r\n"
        b"--XyZ--\r\n"
    )
    out, stats = r.redact(
        _record(
            headers=[
                ("Content-Type", 'multipart/form-data; boundary="XyZ"'),
                ("Content-Length", str(len(body))),
            ],
            body=body,
        )
    )
    assert b"hunter2-s3cret" not in out.body
    assert b"4111" not in out.body
    assert r.placeholder("hunter2-s3cret").encode() in out.body
    assert b"\r\n\r\nann\r\n" in out.body and b"\x00\xffraw\r\n--XyZ--\r\n" in out.body
    assert stats.fields == {"password": 1} and stats.patterns == {"card_number": 1}
    assert dict(out.headers)["Content-Length"] == str(len(out.body))


def test_multipart_without_boundary_keeps_no_body() -> None:
    body = b'--b\r\nContent-Disposition: form-data; name="password"\r\n\r\nsecret-1\r\n--b--\r\n'
    out, stats = Redactor(key=b"k").redact(
        _record(headers=[("Content-Type", "multipart/form-data")], body=body)
    )
    assert out.body == b"" and stats.patterns == {"unreadable_body": 1}
