"""Redaction rules: what is replaced, what is kept, and that placeholders are stable."""

from __future__ import annotations

import gzip
import json
import zlib

from hypothesis import given, settings
from hypothesis import strategies as st

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
    out, stats = r.redact(
        _record(
            headers=[("Content-Encoding", "br"), ("Content-Length", "8")], body=b"\x8b\x00opaque"
        )
    )
    assert out.body == b"" and stats.dropped == {"encoding": 1}
    # Marked for replay, and consistent: an empty body is neither br nor 8 bytes long.
    assert out.extra == {"body_dropped": "encoding", "body_unknown": True}
    assert out.headers == [("Content-Length", "0")]


def test_compressed_bodies_are_found_by_their_magic_bytes() -> None:
    r = Redactor(key=b"k")
    for encode in (gzip.compress, zlib.compress):
        out, stats = r.redact(
            _record(headers=[("Content-Type", "application/json")], body=encode(b'{"pin":"1"}'))
        )
        assert stats.fields == {"pin": 1}
        assert json.loads(zlib.decompress(out.body, 47)) == {"pin": r.placeholder("1")}
    # Text that merely starts like a zlib stream ("x^") is text, not a broken stream.
    out, _ = r.redact(_record(headers=[("Content-Type", "text/plain")], body=b"x^2 + y"))
    assert out.body == b"x^2 + y"
    bomb = gzip.compress(b"0" * (40 * 1024 * 1024))
    out, stats = r.redact(_record(headers=[("Content-Type", "text/plain")], body=bomb))
    assert out.body == b"" and stats.dropped == {"size": 1}


def test_unparsed_bodies_are_dropped_unless_kept() -> None:
    record = _record(headers=[("Content-Type", "image/png")], body=bytes(range(256)))
    out, stats = Redactor().redact(record)
    assert out.body == b"" and stats.dropped == {"format": 1}
    assert out.extra == {"body_dropped": "format", "body_unknown": True}
    assert Redactor(keep_unparsed=True).redact(record)[0] is record
    secret = _record(headers=[("Authorization", "Bearer x")])
    assert Redactor(enabled=False).redact(secret)[0] is secret


def test_records_without_secrets_are_returned_untouched() -> None:
    record = _record(
        path="/api/products/9f1c4a2e-7d3b-4c1a-9e8f-0123456789ab?page=2&ts=1764668644123",
        headers=[("Content-Type", "application/json"), ("If-None-Match", '"5d41402abc4b2a7"')],
        body=b'{"id": 1234567890123, "sku": "ACME-WIDGET-2024"}',
    )
    assert Redactor().redact(record)[0] is record


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
        b"Content-Disposition: form-data; name*=UTF-8''new%5Fpassword\r\n\r\nhunter3\r\n"
        b"--XyZ\r\n"
        b'Content-Disposition: form-data; name="note"\r\n\r\npay with 4111 1111 1111 1111\r\n'
        b"--XyZ\r\n"
        b'Content-Disposition: form-data; name="file"; filename="a.bin"\r\n'
        b"Content-Type: application/octet-stream\r\n\r\n\x00\xffraw\r\n"
        b"--XyZ--\r\n"
    )
    record = _record(
        headers=[
            ("Content-Type", 'multipart/form-data; boundary="XyZ"'),
            ("Content-Length", str(len(body))),
        ],
        body=body,
    )
    out, stats = r.redact(record)
    assert b"hunter2-s3cret" not in out.body and b"hunter3" not in out.body
    assert b"4111" not in out.body
    assert r.placeholder("hunter2-s3cret").encode() in out.body
    assert b"\r\n\r\nann\r\n" in out.body
    # The binary file part cannot be redacted: emptied, the record marked.
    assert b"raw" not in out.body and b'filename="a.bin"' in out.body
    assert out.extra == {"body_dropped": "part", "body_unknown": True}
    assert stats.fields == {"password": 1, "new_password": 1}
    assert stats.patterns == {"card_number": 1} and stats.dropped == {"part": 1}
    assert dict(out.headers)["Content-Length"] == str(len(out.body))
    kept, _ = Redactor(key=b"k", keep_unparsed=True).redact(record)
    assert b"\x00\xffraw\r\n--XyZ--\r\n" in kept.body and "body_dropped" not in kept.extra


def test_multipart_without_boundary_keeps_no_body() -> None:
    body = b'--b\r\nContent-Disposition: form-data; name="password"\r\n\r\nsecret-1\r\n--b--\r\n'
    out, stats = Redactor(key=b"k").redact(
        _record(headers=[("Content-Type", "multipart/form-data")], body=body)
    )
    assert out.body == b"" and stats.dropped == {"format": 1}


def test_names_are_normalised() -> None:
    r = Redactor(key=b"k")
    for name in (
        "password",
        "Password",
        "new_password",
        "password_confirmation",
        "passwordConfirmation",
        "user[password]",
        "user[credentials][secret]",
        "X-Auth-Token",
        "X_Api_Key",
        "x-api-key ",
        "clientSecret",
        "otp_code",
        "pwd2",
        "PIN",
        "user.pin",
        "jsessionid",
        "cardNumber",
    ):
        assert r.names.sensitive(name), name
    for name in ("shipping", "author", "classname", "session_count", "keyboard", "page"):
        assert not r.names.sensitive(name), name
    assert not Redactor(keep_fields=["cursor_token"]).names.sensitive("cursor_token")


def test_values_are_found_by_their_shape() -> None:
    r = Redactor(key=b"k")
    jwt = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjMifQ.c2lnbmF0dXJlLXNpZ25hdHVyZQ"
    cases = {
        f"/x/{jwt}": jwt,
        "note: card 4012 8888 8888 1881 123": "4012 8888 8888 1881",
        "amex 3782-822463-10005.": "3782-822463-10005",
        "key AKIAIOSFODNN7EXAMPLE here": "AKIAIOSFODNN7EXAMPLE",
        "use sk_live_4eC39HqLyjWDarjtT1zdp7dc now": "sk_live_4eC39HqLyjWDarjtT1zdp7dc",
        "Authorization: Bearer abcDEF123456": "abcDEF123456",
    }
    aws = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"  # a long random token under no name
    cases[f"blob {aws} end"] = aws
    for text, secret in cases.items():
        out, _ = r.redact(_record(headers=[("Content-Type", "text/plain")], body=text.encode()))
        assert secret.encode() not in out.body and b"[REDACTED:" in out.body, text
    kept = (
        "ts 1700000000123456789, order 1234567890123456, id 9f1c4a2e-7d3b-4c1a-9e8f-0123456789ab,"
        " token expired, com_example_feature_flag_enabled_2024"
    )
    out, _ = r.redact(_record(headers=[("Content-Type", "text/plain")], body=kept.encode()))
    assert out.body == kept.encode()  # timestamps, non-card numbers, UUIDs, prose, names


def test_headers_by_name_url_and_shape() -> None:
    r = Redactor(key=b"k")
    out, _ = r.redact(
        _record(
            method="GET",
            path="http://alice:s3cr3t@shop.test/u?a=1;password=p1",
            headers=[
                ("Referer", "https://shop.test/cb?access_token=t1&x=1"),
                ("X-Auth-Token", "t2"),
                ("X_Api_Key", "t3"),
                ("Authorization ", "Bearer t4"),
                (
                    "Content-Type",
                    "multipart/form-data; boundary=----WebKitFormBoundary7MA4YWxkTrZu0gW",
                ),
                ("User-Agent", "curl/8.5"),
            ],
        )
    )
    h = out.headers
    # Userinfo is removed (a replay never sends it), the ;-separated secret replaced.
    assert out.path == f"http://shop.test/u?a=1;password={r.placeholder('p1')}"
    assert h[0] == ("Referer", f"https://shop.test/cb?access_token={r.placeholder('t1')}&x=1")
    assert h[1][1] == r.placeholder("t2") and h[2][1] == r.placeholder("t3")
    assert h[3] == ("Authorization ", "Bearer " + r.placeholder("t4"))
    assert h[4:] == [  # structural and harmless headers stay byte for byte
        ("Content-Type", "multipart/form-data; boundary=----WebKitFormBoundary7MA4YWxkTrZu0gW"),
        ("User-Agent", "curl/8.5"),
    ]


def test_xml_graphql_and_json_in_strings() -> None:
    r = Redactor(key=b"k")
    xml = b'<a><ns:Password x="1">p1</ns:Password><b token="p2"/><![CDATA[x]]></a>'
    out, _ = r.redact(_record(headers=[("Content-Type", "text/xml")], body=xml))
    assert b"p1" not in out.body and b"p2" not in out.body and b'x="1"' in out.body
    query = {"query": 'mutation { login(user: "ada", password: "p3") { token: accessToken } }'}
    out, _ = r.redact(
        _record(headers=[("Content-Type", "application/json")], body=json.dumps(query).encode())
    )
    doc = json.loads(out.body)
    assert "p3" not in doc["query"] and '"ada"' in doc["query"]
    assert "token: accessToken" in doc["query"]  # an alias is not a value
    inner = {"payload": json.dumps({"password": "p4", "n": 1})}
    out, _ = r.redact(
        _record(headers=[("Content-Type", "application/json")], body=json.dumps(inner).encode())
    )
    assert json.loads(json.loads(out.body)["payload"]) == {"password": r.placeholder("p4"), "n": 1}


_TYPES = [
    "",
    "application/json",
    "application/x-www-form-urlencoded",
    'multipart/form-data; boundary="b"',
    "multipart/form-data; boundary=b",
    "text/plain",
    "application/xml",
    "application/graphql",
    "application/octet-stream",
]


@settings(max_examples=300, deadline=None)
@given(
    body=st.one_of(
        st.binary(max_size=300),
        st.text(max_size=300).map(lambda t: t.encode("utf-8", "surrogatepass")),
        st.binary(max_size=200).map(lambda b: gzip.compress(b, mtime=0)[: len(b) // 2 + 12]),
        st.recursive(
            st.one_of(st.none(), st.booleans(), st.integers(), st.text(max_size=40)),
            lambda inner: st.one_of(
                st.lists(inner, max_size=4),
                st.dictionaries(st.text(max_size=12), inner, max_size=4),
            ),
            max_leaves=12,
        ).map(lambda doc: json.dumps(doc).encode()),
    ),
    ctype=st.sampled_from(_TYPES),
    encoding=st.sampled_from(["", "gzip", "deflate", "br"]),
    path=st.text(max_size=80),
    header=st.text(max_size=60),
)
def test_any_input_is_redacted_without_error(
    body: bytes, ctype: str, encoding: str, path: str, header: str
) -> None:
    """Whatever arrives, redaction returns a record (it never raises: a recorder would lose the
    request, an import would stop) whose headers still describe its body."""
    record = _record(
        path="/" + path,
        headers=[
            ("Content-Type", ctype),
            ("Content-Encoding", encoding),
            ("Referer", header),
            ("X-Note", header),
            ("Content-Length", str(len(body))),
        ],
        body=body,
    )
    out, stats = Redactor(key=b"k").redact(record)
    if out.body is not record.body:
        assert out.header("content-length") == str(len(out.body))
    if stats.dropped and not out.body:
        assert out.header("content-encoding") is None
        assert out.extra["body_unknown"] is True
