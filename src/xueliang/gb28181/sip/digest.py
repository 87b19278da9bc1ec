"""HTTP digest authentication as SIP uses it (RFC 2617, RFC 7616 for SHA-256; RFC 3261 22).

Server side: :class:`DigestAuthenticator` issues challenges and verifies Authorization headers
against a password the caller looks up (per device or global). Nonces are stateless: they carry
their issue time and an HMAC under the authenticator's secret, so thousands of devices need no
nonce table, any node sharing the secret can verify, and an expired one is told apart from a
forged one (``stale=true`` lets the device retry without asking its user again).

Client side: :func:`authorize` answers a challenge (device simulator, cascade to an upper
platform).

Tolerance, as far as the RFCs allow: no qop in the answer even when it was offered (the RFC 2069
form), algorithm quoted or in lower case, the digest URI taken as the device sent it (devices
differ on which form of the Request-URI they hash), and a realm other than ours accepted when the
digest over it is right (the nonce is still ours, so the password is proven).
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import Enum

from xueliang.gb28181.errors import ParseError
from xueliang.gb28181.sip.address import quote, unquote

_HASHES = {"MD5": "md5", "SHA-256": "sha256"}
ALGORITHMS = ("MD5", "MD5-SESS", "SHA-256", "SHA-256-SESS")
_PARAM_RE = re.compile(
    r'\s*([A-Za-z0-9\-_]+)\s*=\s*("(?:[^"\\]|\\.)*"|[^\s,]*)\s*(?:,|\Z)', re.DOTALL
)


def _canonical_algorithm(value: str | None) -> str:
    algorithm = unquote(value or "MD5").upper()
    if algorithm not in ALGORITHMS:
        raise ParseError(f"unsupported digest algorithm {algorithm!r}")
    return algorithm


def _hash(algorithm: str, text: str | bytes) -> str:
    data = text.encode("utf-8") if isinstance(text, str) else text
    base = algorithm.removesuffix("-SESS")
    # Digest needs MD5 whatever the platform's policy on it: it is what devices speak.
    return hashlib.new(_HASHES[base], data, usedforsecurity=False).hexdigest()


def _display_algorithm(algorithm: str) -> str:
    return algorithm.replace("-SESS", "-sess")


def parse_auth_params(value: str) -> tuple[str, dict[str, str]]:
    """Split ``Digest a=b, c="d"`` into the scheme and unquoted, lower-case-named params."""
    value = value.strip()
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        # Bytes that are not UTF-8 (kept as surrogates by the SIP parser) cannot be hashed.
        raise ParseError("authentication header is not UTF-8") from None
    scheme, _, rest = value.partition(" ")
    if not scheme:
        raise ParseError("empty authentication header")
    params: dict[str, str] = {}
    position = 0
    rest = rest.strip()
    while position < len(rest):
        match = _PARAM_RE.match(rest, position)
        if match is None or match.end() == position:
            raise ParseError(f"malformed authentication parameters at {rest[position:][:40]!r}")
        params[match[1].lower()] = unquote(match[2])
        position = match.end()
    return scheme, params


def compute_response(
    *,
    algorithm: str,
    username: str,
    realm: str,
    password: str,
    method: str,
    uri: str,
    nonce: str,
    qop: str | None = None,
    nc: str | None = None,
    cnonce: str | None = None,
    body: bytes = b"",
) -> str:
    """The ``response`` value (lower-case hex) per RFC 2617 3.2.2 / RFC 7616 3.4.1."""
    algorithm = _canonical_algorithm(algorithm)
    ha1 = _hash(algorithm, f"{username}:{realm}:{password}")
    if algorithm.endswith("-SESS"):
        ha1 = _hash(algorithm, f"{ha1}:{nonce}:{cnonce or ''}")
    if qop == "auth-int":
        ha2 = _hash(algorithm, f"{method}:{uri}:{_hash(algorithm, body)}")
    else:
        ha2 = _hash(algorithm, f"{method}:{uri}")
    if qop:
        return _hash(algorithm, f"{ha1}:{nonce}:{nc}:{cnonce}:{qop}:{ha2}")
    return _hash(algorithm, f"{ha1}:{nonce}:{ha2}")


@dataclass(frozen=True)
class DigestChallenge:
    """What WWW-Authenticate (or Proxy-Authenticate) carries."""

    realm: str
    nonce: str
    algorithm: str = "MD5"
    qop: tuple[str, ...] = ()
    opaque: str | None = None
    stale: bool = False

    @classmethod
    def parse(cls, value: str) -> DigestChallenge:
        scheme, params = parse_auth_params(value)
        if scheme.lower() != "digest":
            raise ParseError(f"not a digest challenge: scheme {scheme!r}")
        if "realm" not in params or "nonce" not in params:
            raise ParseError("digest challenge without realm or nonce")
        qop = tuple(
            item.strip().lower() for item in params.get("qop", "").split(",") if item.strip()
        )
        return cls(
            realm=params["realm"],
            nonce=params["nonce"],
            algorithm=_canonical_algorithm(params.get("algorithm")),
            qop=qop,
            opaque=params.get("opaque"),
            stale=params.get("stale", "").lower() == "true",
        )

    def to_header(self) -> str:
        parts = [f"realm={quote(self.realm)}", f"nonce={quote(self.nonce)}"]
        if self.opaque is not None:
            parts.append(f"opaque={quote(self.opaque)}")
        if self.stale:
            parts.append("stale=true")
        parts.append(f"algorithm={_display_algorithm(self.algorithm)}")
        if self.qop:
            parts.append(f"qop={quote(','.join(self.qop))}")
        return "Digest " + ", ".join(parts)


@dataclass(frozen=True)
class DigestCredentials:
    """What Authorization (or Proxy-Authorization) carries."""

    username: str
    realm: str
    nonce: str
    uri: str
    response: str
    algorithm: str = "MD5"
    qop: str | None = None
    nc: str | None = None
    cnonce: str | None = None
    opaque: str | None = None

    @classmethod
    def parse(cls, value: str) -> DigestCredentials:
        scheme, params = parse_auth_params(value)
        if scheme.lower() != "digest":
            raise ParseError(f"not digest credentials: scheme {scheme!r}")
        missing = [
            name for name in ("username", "realm", "nonce", "uri", "response") if name not in params
        ]
        if missing:
            raise ParseError(f"digest credentials without {', '.join(missing)}")
        qop = params.get("qop", "").lower() or None
        if qop is not None and qop not in ("auth", "auth-int"):
            raise ParseError(f"unsupported qop {qop!r}")
        if qop is not None and ("nc" not in params or "cnonce" not in params):
            raise ParseError("digest credentials with qop but without nc or cnonce")
        return cls(
            username=params["username"],
            realm=params["realm"],
            nonce=params["nonce"],
            uri=params["uri"],
            response=params["response"].lower(),
            algorithm=_canonical_algorithm(params.get("algorithm")),
            qop=qop,
            nc=params.get("nc"),
            cnonce=params.get("cnonce"),
            opaque=params.get("opaque"),
        )

    def to_header(self) -> str:
        parts = [
            f"username={quote(self.username)}",
            f"realm={quote(self.realm)}",
            f"nonce={quote(self.nonce)}",
            f"uri={quote(self.uri)}",
            f"response={quote(self.response)}",
            f"algorithm={_display_algorithm(self.algorithm)}",
        ]
        if self.qop is not None:
            parts += [f"qop={self.qop}", f"nc={self.nc}"]
        if self.cnonce is not None:
            parts.append(f"cnonce={quote(self.cnonce)}")
        if self.opaque is not None:
            parts.append(f"opaque={quote(self.opaque)}")
        return "Digest " + ", ".join(parts)


def authorize(
    challenge: DigestChallenge,
    *,
    username: str,
    password: str,
    method: str,
    uri: str,
    nc: int = 1,
    cnonce: str | None = None,
    body: bytes = b"",
) -> DigestCredentials:
    """Client side: the credentials answering ``challenge`` (qop=auth when offered)."""
    qop = (
        "auth" if "auth" in challenge.qop else ("auth-int" if "auth-int" in challenge.qop else None)
    )
    nc_text = f"{nc:08x}" if qop or challenge.algorithm.endswith("-SESS") else None
    if (qop or challenge.algorithm.endswith("-SESS")) and cnonce is None:
        cnonce = secrets.token_hex(8)
    response = compute_response(
        algorithm=challenge.algorithm,
        username=username,
        realm=challenge.realm,
        password=password,
        method=method,
        uri=uri,
        nonce=challenge.nonce,
        qop=qop,
        nc=nc_text,
        cnonce=cnonce,
        body=body,
    )
    return DigestCredentials(
        username=username,
        realm=challenge.realm,
        nonce=challenge.nonce,
        uri=uri,
        response=response,
        algorithm=challenge.algorithm,
        qop=qop,
        nc=nc_text if qop else None,
        cnonce=cnonce if qop or challenge.algorithm.endswith("-SESS") else None,
        opaque=challenge.opaque,
    )


class Outcome(Enum):
    OK = "ok"
    MALFORMED = "malformed"
    UNKNOWN_USER = "unknown user"
    BAD_NONCE = "nonce not issued here"
    STALE = "nonce expired"
    WRONG_PASSWORD = "wrong password"  # noqa: S105 (an outcome, not a password)


@dataclass(frozen=True)
class Verification:
    outcome: Outcome
    username: str | None = None
    detail: str = ""

    @property
    def ok(self) -> bool:
        return self.outcome is Outcome.OK

    @property
    def stale(self) -> bool:
        return self.outcome is Outcome.STALE


class DigestAuthenticator:
    """Issues and checks digest nonces for one realm; time is always passed in (seconds)."""

    def __init__(
        self,
        realm: str,
        *,
        secret: bytes | None = None,
        algorithm: str = "MD5",
        qop: tuple[str, ...] = ("auth",),
        nonce_lifetime: float = 300.0,
        clock_skew: float = 5.0,
    ) -> None:
        self.realm = realm
        self.algorithm = _canonical_algorithm(algorithm)
        self.qop = qop
        self.nonce_lifetime = nonce_lifetime
        self._skew = clock_skew
        self._secret = secret if secret is not None else secrets.token_bytes(32)

    def challenge(self, now: float, *, stale: bool = False) -> DigestChallenge:
        return DigestChallenge(
            realm=self.realm,
            nonce=self._make_nonce(now),
            algorithm=self.algorithm,
            qop=self.qop,
            stale=stale,
        )

    def _make_nonce(self, now: float) -> str:
        issued = f"{int(now * 1000):x}"
        salt = secrets.token_hex(6)
        return f"{issued}.{salt}.{self._sign(issued, salt)}"

    def _sign(self, issued: str, salt: str) -> str:
        mac = hmac.new(self._secret, f"{issued}.{salt}.{self.realm}".encode(), hashlib.sha256)
        return mac.hexdigest()[:32]

    def _nonce_age(self, nonce: str, now: float) -> float | None:
        """Age of a nonce we issued, None if we did not issue it."""
        if not nonce.isascii():  # ours are; compare_digest refuses other text
            return None
        parts = nonce.split(".")
        if len(parts) != 3:
            return None
        issued, salt, mac = parts
        if not hmac.compare_digest(self._sign(issued, salt), mac):
            return None
        try:
            return now - int(issued, 16) / 1000
        except ValueError:
            return None

    def verify(
        self,
        authorization: str | None,
        *,
        method: str,
        now: float,
        password_for: Callable[[str], str | None] | Mapping[str, str],
        body: bytes = b"",
    ) -> Verification:
        """Check an Authorization value; the outcome says what to answer (401 with a fresh
        challenge, ``stale=True`` for STALE)."""
        if authorization is None:
            return Verification(Outcome.MALFORMED, detail="no credentials")
        try:
            creds = DigestCredentials.parse(authorization)
        except ParseError as exc:
            return Verification(Outcome.MALFORMED, detail=str(exc))
        lookup = password_for.get if isinstance(password_for, Mapping) else password_for
        password = lookup(creds.username)
        if password is None:
            return Verification(Outcome.UNKNOWN_USER, creds.username)
        age = self._nonce_age(creds.nonce, now)
        if age is None or age < -self._skew:
            return Verification(Outcome.BAD_NONCE, creds.username)
        expected = compute_response(
            algorithm=creds.algorithm,
            username=creds.username,
            realm=creds.realm,
            password=password,
            method=method.upper(),
            uri=creds.uri,
            nonce=creds.nonce,
            qop=creds.qop,
            nc=creds.nc,
            cnonce=creds.cnonce,
            body=body,
        )
        if not hmac.compare_digest(expected.encode(), creds.response.encode()):
            return Verification(Outcome.WRONG_PASSWORD, creds.username)
        # Only a correct digest over an old nonce is stale (RFC 2617 3.2.1): telling a wrong
        # password "stale" would make the device retry forever.
        if age > self.nonce_lifetime:
            return Verification(Outcome.STALE, creds.username)
        return Verification(Outcome.OK, creds.username)
