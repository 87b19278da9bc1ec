"""Digest authentication: RFC test vectors, the server's nonce handling and the forms real
GB/T 28181 devices send."""

from __future__ import annotations

import contextlib
import hashlib
import hmac

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from xueliang.gb28181.errors import ParseError
from xueliang.gb28181.sip import (
    DigestAuthenticator,
    DigestChallenge,
    DigestCredentials,
    Outcome,
    authorize,
    compute_response,
)

DEVICE = "34020000001320000001"
PLATFORM_URI = "sip:34020000002000000001@3402000000"
PASSWORD = "12345678"


def test_rfc2617_worked_example() -> None:
    # RFC 2617 section 3.5.
    header = (
        'Digest username="Mufasa", realm="testrealm@host.com", '
        'nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093", uri="/dir/index.html", qop=auth, '
        'nc=00000001, cnonce="0a4f113b", response="6629fae49393a05397450978507c4ef1", '
        'opaque="5ccc069c403ebaf9f0171e9517f40e41"'
    )
    creds = DigestCredentials.parse(header)
    assert creds.opaque == "5ccc069c403ebaf9f0171e9517f40e41"
    assert (
        compute_response(
            algorithm=creds.algorithm,
            username=creds.username,
            realm=creds.realm,
            password="Circle Of Life",
            method="GET",
            uri=creds.uri,
            nonce=creds.nonce,
            qop=creds.qop,
            nc=creds.nc,
            cnonce=creds.cnonce,
        )
        == creds.response
        == "6629fae49393a05397450978507c4ef1"
    )


@pytest.mark.parametrize(
    ("algorithm", "expected"),
    [
        ("MD5", "8ca523f5e9506fed4657c9700eebdbec"),
        ("SHA-256", "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1"),
    ],
)
def test_rfc7616_examples(algorithm: str, expected: str) -> None:
    # RFC 7616 section 3.9.1.
    assert (
        compute_response(
            algorithm=algorithm,
            username="Mufasa",
            realm="http-auth@example.org",
            password="Circle of Life",
            method="GET",
            uri="/dir/index.html",
            nonce="7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v",
            qop="auth",
            nc="00000001",
            cnonce="f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ",
        )
        == expected
    )


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def _md5(text: str) -> str:
    return hashlib.md5(text.encode(), usedforsecurity=False).hexdigest()


def test_sha256_register_computed_independently() -> None:
    auth = DigestAuthenticator("3402000000", secret=b"k", algorithm="SHA-256")
    challenge = DigestChallenge.parse(auth.challenge(now=1000.0).to_header())
    assert challenge.algorithm == "SHA-256"
    assert challenge.qop == ("auth",)
    creds = authorize(
        challenge,
        username=DEVICE,
        password=PASSWORD,
        method="REGISTER",
        uri=PLATFORM_URI,
        cnonce="abc123",
    )
    ha1 = _sha256(f"{DEVICE}:3402000000:{PASSWORD}")
    ha2 = _sha256(f"REGISTER:{PLATFORM_URI}")
    assert creds.response == _sha256(f"{ha1}:{challenge.nonce}:00000001:abc123:auth:{ha2}")
    result = auth.verify(
        creds.to_header(), method="REGISTER", now=1001.0, password_for={DEVICE: PASSWORD}
    )
    assert result.ok and result.username == DEVICE


def test_device_without_qop_and_with_quoted_lowercase_algorithm() -> None:
    """What many cameras send: no qop although one was offered, algorithm="md5" quoted, and
    the URI hashed as the domain form while the Request-URI carried an address."""
    auth = DigestAuthenticator("3402000000", secret=b"k")
    challenge = auth.challenge(now=50.0)
    uri = "sip:34020000002000000001@192.168.1.10:5060"
    ha1 = _md5(f"{DEVICE}:3402000000:{PASSWORD}")
    response = _md5(f"{ha1}:{challenge.nonce}:{_md5(f'REGISTER:{uri}')}")
    header = (
        f'Digest username="{DEVICE}",realm="3402000000",nonce="{challenge.nonce}",'
        f'uri="{uri}",response="{response.upper()}",algorithm="md5"'
    )
    assert auth.verify(header, method="REGISTER", now=51.0, password_for=lambda _: PASSWORD).ok


@pytest.mark.parametrize("algorithm", ["MD5", "SHA-256", "MD5-sess", "SHA-256-sess"])
@pytest.mark.parametrize("qop", [("auth",), (), ("auth-int",)])
def test_client_and_server_agree(algorithm: str, qop: tuple[str, ...]) -> None:
    auth = DigestAuthenticator("3402000000", secret=b"k", algorithm=algorithm, qop=qop)
    challenge = DigestChallenge.parse(auth.challenge(now=0.0).to_header())
    body = b"<Notify/>"
    creds = authorize(
        challenge, username=DEVICE, password=PASSWORD, method="MESSAGE", uri=PLATFORM_URI, body=body
    )
    header = creds.to_header()
    assert DigestCredentials.parse(header) == creds
    lookup = {DEVICE: PASSWORD}
    assert auth.verify(header, method="MESSAGE", now=1.0, password_for=lookup, body=body).ok
    wrong = auth.verify(header, method="MESSAGE", now=1.0, password_for={DEVICE: "nope"}, body=body)
    assert wrong.outcome is Outcome.WRONG_PASSWORD
    if qop == ("auth-int",):
        tampered = auth.verify(header, method="MESSAGE", now=1.0, password_for=lookup, body=b"x")
        assert tampered.outcome is Outcome.WRONG_PASSWORD


def _register_auth(auth: DigestAuthenticator, now: float, password: str = PASSWORD) -> str:
    return authorize(
        auth.challenge(now), username=DEVICE, password=password, method="REGISTER", uri=PLATFORM_URI
    ).to_header()


def test_stale_only_for_a_correct_digest_over_an_expired_nonce() -> None:
    auth = DigestAuthenticator("3402000000", secret=b"k", nonce_lifetime=60)
    lookup = {DEVICE: PASSWORD}
    header = _register_auth(auth, now=0.0)
    assert auth.verify(header, method="REGISTER", now=59.0, password_for=lookup).ok
    stale = auth.verify(header, method="REGISTER", now=61.0, password_for=lookup)
    assert stale.outcome is Outcome.STALE and stale.stale
    assert auth.challenge(61.0, stale=True).to_header().count("stale=true") == 1
    wrong = _register_auth(auth, now=0.0, password="wrong")
    assert (
        auth.verify(wrong, method="REGISTER", now=61.0, password_for=lookup).outcome
        is Outcome.WRONG_PASSWORD
    )


def test_nonces_not_issued_here_are_refused() -> None:
    auth = DigestAuthenticator("3402000000", secret=b"k")
    other = DigestAuthenticator("3402000000", secret=b"other")
    lookup = {DEVICE: PASSWORD}
    foreign = _register_auth(other, now=0.0)
    assert auth.verify(foreign, method="REGISTER", now=1.0, password_for=lookup).outcome is (
        Outcome.BAD_NONCE
    )
    # A nonce with a forged issue time fails its MAC.
    nonce = auth.challenge(0.0).nonce
    issued, salt, mac = nonce.split(".")
    forged = DigestChallenge(realm="3402000000", nonce=f"{int(issued, 16) + 10**6:x}.{salt}.{mac}")
    header = authorize(
        forged, username=DEVICE, password=PASSWORD, method="REGISTER", uri=PLATFORM_URI
    ).to_header()
    assert auth.verify(header, method="REGISTER", now=1.0, password_for=lookup).outcome is (
        Outcome.BAD_NONCE
    )
    # A nonce from the future (beyond the allowed skew) is not ours to accept either.
    future = _register_auth(auth, now=100.0)
    assert auth.verify(future, method="REGISTER", now=10.0, password_for=lookup).outcome is (
        Outcome.BAD_NONCE
    )


def test_each_challenge_has_a_fresh_nonce() -> None:
    auth = DigestAuthenticator("3402000000")
    assert auth.challenge(0.0).nonce != auth.challenge(0.0).nonce


def test_unknown_user_and_malformed_credentials() -> None:
    auth = DigestAuthenticator("3402000000", secret=b"k")
    header = _register_auth(auth, now=0.0)
    assert (
        auth.verify(header, method="REGISTER", now=1.0, password_for={}).outcome
        is Outcome.UNKNOWN_USER
    )
    for bad in (None, "", "Basic dXNlcjpwYXNz", 'Digest username="x"', "Digest ,,,=", "Digest a"):
        result = auth.verify(bad, method="REGISTER", now=1.0, password_for={DEVICE: PASSWORD})
        assert result.outcome is Outcome.MALFORMED


def test_digests_are_compared_in_constant_time(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[bytes, bytes]] = []
    real = hmac.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(hmac, "compare_digest", spy)
    auth = DigestAuthenticator("3402000000", secret=b"k")
    header = _register_auth(auth, now=0.0, password="wrong")
    auth.verify(header, method="REGISTER", now=1.0, password_for={DEVICE: PASSWORD})
    response = DigestCredentials.parse(header).response.encode()
    assert any(response in pair for pair in calls)


def test_challenge_parsing_forms() -> None:
    challenge = DigestChallenge.parse(
        'digest realm="3402000000",nonce="abc",algorithm="md5",qop="auth,auth-int",'
        'opaque="o",stale=TRUE'
    )
    assert challenge.algorithm == "MD5"
    assert challenge.qop == ("auth", "auth-int")
    assert challenge.stale and challenge.opaque == "o"
    creds = authorize(challenge, username="u", password="p", method="INVITE", uri="sip:x@y")
    assert creds.qop == "auth" and creds.opaque == "o" and creds.nc == "00000001"
    for bad in ("Basic realm=x", 'Digest realm="r"', "Digest realm=x, nonce=y, algorithm=SHA-1"):
        with pytest.raises(ParseError):
            DigestChallenge.parse(bad)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=120))
def test_fuzz_auth_headers(text: str) -> None:
    for parse in (DigestChallenge.parse, DigestCredentials.parse):
        with contextlib.suppress(ParseError):
            parse("Digest " + text)
    auth = DigestAuthenticator("r", secret=b"k")
    result = auth.verify("Digest " + text, method="REGISTER", now=0.0, password_for=lambda _: "p")
    assert not result.ok


def test_credentials_not_utf8_or_with_a_non_ascii_nonce_are_refused_not_raised() -> None:
    # Found by test_gb_fuzz.py. Bytes that are not UTF-8 reach the authenticator as surrogates
    # (the SIP parser decodes with surrogateescape) and could not be hashed; a nonce with other
    # than ASCII in it made hmac.compare_digest raise TypeError.
    auth = DigestAuthenticator("3402000000", secret=b"k")
    lookup = {DEVICE: PASSWORD}
    nonce = auth.challenge(0.0).nonce
    ours = f'Digest username="{DEVICE}", realm="3402000000", nonce="{nonce}", response="0", '
    cases = [
        (ours + 'uri="sip:\udcff"', Outcome.MALFORMED),  # the byte 0xFF, not UTF-8
        (ours + 'uri="sip:\u00ff"', Outcome.WRONG_PASSWORD),  # "ÿ" in UTF-8: hashed, no match
        (f'Digest username="{DEVICE}", realm="r", nonce="\udcff.a.b", uri="u", response="0"',
         Outcome.MALFORMED),
        (f'Digest username="{DEVICE}", realm="r", nonce="1.a.\u00e9", uri="u", response="0"',
         Outcome.BAD_NONCE),
    ]  # fmt: skip
    for header, outcome in cases:
        result = auth.verify(header, method="REGISTER", now=1.0, password_for=lookup)
        assert result.outcome is outcome, header
    with pytest.raises(ParseError, match="UTF-8"):
        DigestChallenge.parse('Digest realm="\udcff", nonce="n"')
    # Text that is UTF-8 beyond ASCII is still fine.
    chinese = authorize(
        auth.challenge(0.0), username="前门", password="密码", method="REGISTER", uri=PLATFORM_URI
    ).to_header()
    assert auth.verify(chinese, method="REGISTER", now=1.0, password_for={"前门": "密码"}).ok
