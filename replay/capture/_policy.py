"""What counts as a secret: sensitive *names* and secret-shaped *values*.

The redactor (:mod:`hlthz.replay.capture.redact`) asks two questions everywhere it looks:

- :meth:`Names.sensitive`: is this field, header, cookie or XML element name one whose value is
  a secret? Names are compared after normalising case, dropping ``-``, ``_``, ``.``, spaces and
  brackets (``X_Api_Key`` = ``x-api-key``, ``user[password]`` = ``userPassword``). A name is
  sensitive when it *contains* a strong word (``password``, ``token``, ``secret``, ``apikey``
  ...), so ``new_password``, ``password_confirmation`` and ``X-Auth-Token`` match; or when,
  stripped of a common prefix (``x``, ``new``, ``old``, ``user`` ...) and suffix
  (``confirmation``, ``again``, ``2`` ...), it *equals* a short word (``pass``, ``pin``,
  ``otp``, ``key`` ...) that would match far too much as a substring (``pin`` in ``shipping``).
- :func:`Shapes.scan`: which parts of a free-text value look like a secret whatever their name?
  JWTs, ``Bearer``/``Basic``/``Token`` credentials, well-known API key prefixes, long
  high-entropy tokens, payment card numbers (Luhn, any separators, digits around them) and,
  when asked, e-mail addresses.

docs/capture.md (*Redaction policy*) is the user-facing table of the same rules.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable

__all__ = [
    "DEFAULT_FIELDS",
    "DEFAULT_STEMS",
    "Names",
    "Shapes",
    "luhn_valid",
    "normalize_name",
]

#: Words that make any name containing them sensitive (compared normalised, see module doc).
DEFAULT_STEMS: tuple[str, ...] = (
    "password",
    "passwd",
    "passphrase",
    "secret",
    "token",
    "apikey",
    "accesskey",
    "privatekey",
    "secretkey",
    "signingkey",
    "encryptionkey",
    "credential",
    "authorization",
    "signature",
    "sessionid",
    "sessid",
    "cookie",
    "jwt",
    "bearer",
    "cardnumber",
    "creditcard",
    "ccnumber",
    "cardnum",
    "cvv",
    "cvc",
)
#: Short words that are sensitive only as the whole name (after prefix/suffix stripping).
DEFAULT_FIELDS: tuple[str, ...] = (
    "pass",
    "pwd",
    "pw",
    "pin",
    "pincode",
    "pan",
    "otp",
    "totp",
    "hotp",
    "mfa",
    "mfacode",
    "2fa",
    "auth",
    "authcode",
    "authkey",
    "key",
    "sig",
    "sid",
    "session",
    "csrf",
    "xsrf",
    "ssn",
    "cc",
)
_PREFIXES = ("x", "new", "old", "current", "confirm", "repeat", "user", "my", "client", "app")
_SUFFIXES = ("confirmation", "confirm", "again", "repeat", "code", "1", "2")
_DROP = re.compile(r"[\s\-_.\[\]]+")
_SEGMENTS = re.compile(r"[\[\].]+")
_CACHE_SIZE = 4096


def normalize_name(name: str) -> str:
    """``"X_Api-Key "`` -> ``"xapikey"``: lower case without ``-``, ``_``, ``.``, spaces or
    brackets."""
    return _DROP.sub("", name.lower())


class Names:
    """Decides whether a name is sensitive; results are cached (names repeat endlessly)."""

    def __init__(
        self,
        exact: Iterable[str] = DEFAULT_FIELDS,
        stems: Iterable[str] = DEFAULT_STEMS,
        keep: Iterable[str] = (),
    ) -> None:
        self.exact = frozenset(normalize_name(n) for n in exact)
        self.stems = tuple(sorted({normalize_name(s) for s in stems if s}))
        self.keep = frozenset(normalize_name(n) for n in keep)
        self._cache: dict[str, bool] = {}

    def sensitive(self, name: str) -> bool:
        """Is a value under ``name`` a secret?"""
        hit = self._cache.get(name)
        if hit is None:
            if len(self._cache) >= _CACHE_SIZE:
                self._cache.clear()
            hit = self._cache[name] = self._decide(name)
        return hit

    def _decide(self, name: str) -> bool:
        norm = normalize_name(name)
        if not norm or norm in self.keep:
            return False
        if any(stem in norm for stem in self.stems):
            return True
        # user[pin], card.cvv: the last bracket or dot segment names the value too.
        last = normalize_name(_SEGMENTS.split(name.strip("[]. "))[-1])
        return any(self._exact(candidate) for candidate in {norm, last} if candidate)

    def _exact(self, norm: str) -> bool:
        if norm in self.exact:
            return True
        for prefix in ("", *_PREFIXES):
            if not norm.startswith(prefix):
                continue
            core = norm[len(prefix) :]
            if core in self.exact:
                return True
            for suffix in _SUFFIXES:
                if core.endswith(suffix) and core[: -len(suffix)] in self.exact:
                    return True
        return False


def luhn_valid(digits: str) -> bool:
    """True when ``digits`` (digits only) passes the Luhn checksum used by card numbers."""
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i % 2:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


def looks_like_card(digits: str) -> bool:
    """13-19 digits, a payment network's first digit (2-6) and a valid Luhn checksum.

    The first-digit rule is what keeps timestamps (``1700000000000``) and snowflake ids, which
    pass Luhn one time in ten, out of the redaction.
    """
    return 13 <= len(digits) <= 19 and digits[0] in "23456" and luhn_valid(digits)


# -- value shapes --------------------------------------------------------------------------------

_JWT = (
    r"eyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*(?:\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+)?"
)
_KEY = (
    r"(?:sk|rk)_(?:live|test)_[A-Za-z0-9]{10,}|gh[pousr]_[A-Za-z0-9]{20,}"
    r"|github_pat_[A-Za-z0-9_]{20,}|glpat-[A-Za-z0-9_-]{20,}|xox[abposr]-[A-Za-z0-9-]{10,}"
    r"|(?:AKIA|ASIA)[0-9A-Z]{16}|AIza[0-9A-Za-z_-]{35}|npm_[A-Za-z0-9]{36}"
)
_CRED = r"\b(?i:bearer|basic|token)[ \t]+(?P<cred>[A-Za-z0-9._~+/-]{8,}=*)"
# Digit groups joined by single separators: "4012 8888 8888 1881 123", "4111-1111-1111-1111".
_DIGITS = r"(?<![0-9])[0-9]+(?:[ \-./][0-9]+)*(?![0-9])"
_TOKEN = r"(?<![A-Za-z0-9+/_~-])[A-Za-z0-9+/_~-]{32,}={0,2}"
_EMAIL = r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}"
_UUID = re.compile(r"[0-9a-fA-F]{8}(?:-[0-9a-fA-F]{4}){3}-[0-9a-fA-F]{12}")
_HEX = re.compile(r"[0-9a-fA-F]+")
_GROUP = re.compile(r"[0-9]+")
_SCHEME_ONLY = re.compile(r"^(?i:bearer|basic|token)[ \t]+")


def _entropy(text: str) -> float:
    counts: dict[str, int] = {}
    for ch in text:
        counts[ch] = counts.get(ch, 0) + 1
    n = len(text)
    return -sum(c / n * math.log2(c / n) for c in counts.values())


def high_entropy(token: str) -> bool:
    """A random-looking token: hex of 32+ characters with entropy >= 3.0 bits per character,
    or a base64-like token mixing letters and digits with entropy >= 4.0 (an English compound
    or a dotted name stays below that); canonical UUIDs are identifiers, not secrets."""
    core = token.rstrip("=")
    if len(core) < 32 or _UUID.fullmatch(core):
        return False
    if _HEX.fullmatch(core):
        return any(c.isdigit() for c in core) and _entropy(core) >= 3.0
    classes = sum(
        (
            any(c.islower() for c in core),
            any(c.isupper() for c in core),
            any(c.isdigit() for c in core),
        )
    )
    return classes >= 2 and _entropy(core) >= 4.0


class Shapes:
    """Finds secret-shaped values in text and replaces them via ``replace(kind, value)``.

    ``cards``, ``tokens`` and ``emails`` switch those detectors; JWTs, credentials after an
    auth scheme and well-known key prefixes are always on. ``scan(text, long_tokens=False)``
    skips the generic high-entropy rule (paths: ids and hashes live there).
    """

    def __init__(self, *, cards: bool = True, tokens: bool = True, emails: bool = False) -> None:
        self.cards = cards
        self.tokens = tokens
        self.emails = emails
        parts = [f"(?P<jwt>{_JWT})", f"(?P<key>{_KEY})", f"(?P<credential>{_CRED})"]
        if emails:
            parts.append(f"(?P<email>{_EMAIL})")
        if cards:
            parts.append(f"(?P<card>{_DIGITS})")
        self._regex = re.compile("|".join(parts))
        # Long tokens in a second pass: their character class spans "/" and "-", so a token
        # run found first would swallow a JWT or a key that starts inside it ("/x/eyJ...").
        self._tokens = re.compile(_TOKEN) if tokens else None
        #: Shorter than this, no shape can match (a 13-digit card is the shortest).
        self.min_length = 6 if emails else 13

    def scan(
        self, text: str, replace: Callable[[str, str], str], *, long_tokens: bool = True
    ) -> str:
        """``text`` with every secret-shaped part replaced by ``replace(kind, part)``."""
        if len(text) < self.min_length:
            return text

        def sub(match: re.Match[str]) -> str:
            kind = match.lastgroup or ""
            value = match.group(0)
            if kind == "credential":
                cred = match.group("cred")
                if cred.islower() and cred.isalpha():
                    return value  # "token expired", prose rather than a credential
                start = match.start("cred") - match.start()
                return value[:start] + replace("credential", cred)
            if kind == "card":
                return self._cards(value, replace)
            return replace(kind, value)

        def token(match: re.Match[str]) -> str:
            value = match.group(0)
            return replace("token", value) if high_entropy(value) else value

        text = self._regex.sub(sub, text)
        if long_tokens and self._tokens is not None and len(text) >= 32:
            text = self._tokens.sub(token, text)
        return text

    @staticmethod
    def _cards(run: str, replace: Callable[[str, str], str]) -> str:
        """Card numbers inside a run of digit groups: every window of whole groups holding
        13-19 digits is tried, longest first, so digits next to a card do not hide it."""
        groups = [(m.start(), m.end()) for m in _GROUP.finditer(run)]
        out: list[str] = []
        pos = 0
        i = 0
        while i < len(groups):
            found = None
            total = 0
            for j in range(i, len(groups)):
                total += groups[j][1] - groups[j][0]
                if total > 19:
                    break
                if total >= 13:
                    digits = "".join(run[a:b] for a, b in groups[i : j + 1])
                    if looks_like_card(digits):
                        found = (j, digits)  # keep going: a longer window may be the card
            if found is None:
                i += 1
                continue
            j, digits = found
            start, end = groups[i][0], groups[j][1]
            out.append(run[pos:start])
            out.append(replace("card_number", digits))
            pos = end
            i = j + 1
        if not out:
            return run
        out.append(run[pos:])
        return "".join(out)


def strip_scheme(value: str) -> tuple[str, str]:
    """``"Bearer abc"`` -> ``("Bearer ", "abc")``; a value without a scheme -> ``("", value)``."""
    match = _SCHEME_ONLY.match(value)
    if match is None:
        return "", value
    return value[: match.end()], value[match.end() :]
