"""Redaction of one client's secrets from the errors it raises.

Our own messages never include the key or a token, but a server, proxy or gateway may echo the
request back (a body that quotes the ``Authorization`` header, a header that reflects it), and a
lower layer's exception may repeat it. A :class:`Redactor` knows the secrets of one client (its
key, and each token as it is fetched); :func:`scrub` applies it to an error and its whole chain
before the error reaches the caller, a log or a pickle.

Both run on error paths only, but on every error, so they stay linear in the text and cost one
attribute read when there is nothing to do.
"""

from __future__ import annotations

import builtins
import functools
import json
import re
import threading
from collections.abc import Iterable, Mapping
from typing import Any, TypeVar
from urllib.parse import parse_qsl, quote, unquote, urlsplit

from pydantic import SecretStr

from ._exceptions import AzmlError

__all__ = [
    "MIN_SECRET_LENGTH",
    "REDACTED",
    "SENSITIVE_HEADERS",
    "SENSITIVE_QUERY_PARAMETERS",
    "Redactor",
    "scrub",
    "shown_url",
    "url_secrets",
]

#: What a secret, or the value of a sensitive header, is replaced with.
REDACTED = "[REDACTED]"

#: Header names whose value is a credential whatever it looks like (compared in lower case).
SENSITIVE_HEADERS = frozenset(
    {
        "authorization",
        "proxy-authorization",
        "api-key",
        "x-api-key",
        "ocp-apim-subscription-key",
        "cookie",
        "set-cookie",
    }
)

#: Query parameters whose value is a credential (compared in lower case): keys put in the URL
#: (``?api-key=``, ``?code=`` of Azure Functions, ``?subscription-key=``), SAS signatures
#: (``sig``), tokens. The URL of a request appears in its log lines and errors.
SENSITIVE_QUERY_PARAMETERS = frozenset(
    {
        "api-key",
        "api_key",
        "apikey",
        "key",
        "code",
        "sig",
        "signature",
        "token",
        "access_token",
        "x-api-key",
        "subscription-key",
        "subscription_key",
        "password",
        "secret",
        "client_secret",
    }
)

#: Shorter strings are ignored: redacting "abc" everywhere would garble every message while
#: protecting nothing (no real key or token is that short).
MIN_SECRET_LENGTH = 8

#: Tokens are added as they are fetched (about hourly); only the newest are kept, so a client
#: that runs for weeks does not grow an ever longer pattern. Secrets given to the constructor
#: (the key) are never dropped.
_MAX_ADDED = 16

_E = TypeVar("_E", bound=BaseException)


def _plain(secrets: Iterable[SecretStr]) -> list[str]:
    return [secret.get_secret_value() for secret in secrets]


def _forms(secret: str) -> set[str]:
    """The secret as sent, and as it reads once echoed inside JSON or a URL.

    Some JSON encoders (.NET, PHP) also write ``/`` as ``\\/``, which base64 keys contain.
    """
    escaped = json.dumps(secret)[1:-1]
    return {secret, escaped, escaped.replace("/", "\\/"), quote(secret, safe="")}


class _Patterns:
    """One immutable snapshot: readers take it with a single attribute read, no lock."""

    __slots__ = ("bytes", "text")

    def __init__(self, secrets: Iterable[str]) -> None:
        forms = {form for secret in secrets for form in _forms(secret)}
        # Longest first: alternation takes the first branch that matches, and a secret may
        # start with another one (a token that begins like the key must be hidden whole).
        ordered = sorted(forms, key=lambda form: (-len(form), form))
        self.text: re.Pattern[str] | None = None
        self.bytes: re.Pattern[builtins.bytes] | None = None
        if ordered:
            self.text = re.compile("|".join(map(re.escape, ordered)))
            encoded = (form.encode() for form in ordered)
            self.bytes = re.compile(b"|".join(map(re.escape, encoded)))


_EMPTY = _Patterns(())


class Redactor:
    """The secrets of one client, and the means to hide them in text, headers and bytes.

    ``Redactor(secrets)`` starts with the client's key(s); :meth:`add` adds each token as it is
    fetched. Every occurrence of a secret (also JSON-escaped or percent-encoded, as echoes put
    it) becomes ``[REDACTED]``. The methods return their argument itself when it holds no
    secret, and cost nothing when the redactor knows none.

    :meth:`add` may be called from any thread or task: it swaps in a new compiled pattern under
    a lock, while readers use whichever pattern was current when they started.
    """

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        # Kept as SecretStr (and, compiled, inside the patterns): never a plain str attribute.
        self._fixed: tuple[SecretStr, ...] = tuple(
            dict.fromkeys(SecretStr(s) for s in secrets if _usable(s))
        )
        self._added: dict[SecretStr, None] = {}  # insertion-ordered: the oldest goes first
        self._lock = threading.Lock()
        self._patterns = _Patterns(_plain(self._fixed)) if self._fixed else _EMPTY

    def __repr__(self) -> str:
        return f"Redactor(<{len(self._fixed) + len(self._added)} secrets>)"

    def __bool__(self) -> bool:
        """Whether there is any secret to look for."""
        return self._patterns.text is not None

    def add(self, secret: str) -> None:
        """Look for ``secret`` too (ignored under 8 characters; a TypeError if not a str)."""
        if not _usable(secret):
            return
        wrapped = SecretStr(secret)
        with self._lock:
            if wrapped in self._fixed or wrapped in self._added:
                return
            self._added[wrapped] = None
            while len(self._added) > _MAX_ADDED:
                del self._added[next(iter(self._added))]
            self._patterns = _Patterns(_plain((*self._fixed, *self._added)))

    def found(self, value: str) -> bool:
        """Whether ``value`` contains a secret."""
        pattern = self._patterns.text
        return pattern is not None and pattern.search(value) is not None

    def text(self, value: str) -> str:
        """``value`` with every secret replaced by ``[REDACTED]`` (``value`` itself if none)."""
        pattern = self._patterns.text
        if pattern is None:
            return value
        redacted, count = pattern.subn(REDACTED, value)
        return redacted if count else value

    def bytes(self, value: builtins.bytes) -> builtins.bytes:
        """:meth:`text` for bytes (secrets matched in their UTF-8 form)."""
        pattern = self._patterns.bytes
        if pattern is None:
            return value
        redacted, count = pattern.subn(REDACTED.encode(), value)
        return redacted if count else value

    def headers(self, mapping: Mapping[str, str]) -> dict[str, str]:
        """A copy of ``mapping``: credential headers blanked, every other value redacted.

        The names in :data:`SENSITIVE_HEADERS` lose their value whatever it is, since a cookie
        or a gateway's key is a secret this redactor was never told about.
        """
        return {
            name: REDACTED if name.lower() in SENSITIVE_HEADERS else self.text(value)
            for name, value in mapping.items()
        }


def _usable(secret: str) -> bool:
    if not isinstance(secret, str):
        # Ignoring it would be silent and unsafe: a SecretStr passed as is protects nothing.
        raise TypeError(
            f"a secret must be a str, not {type(secret).__name__} "
            "(for a SecretStr, pass .get_secret_value())"
        )
    return len(secret) >= MIN_SECRET_LENGTH


def url_secrets(url: str) -> list[str]:
    """The credentials a URL carries: its password, and the values of its
    :data:`SENSITIVE_QUERY_PARAMETERS` (for a :class:`Redactor` to hide wherever the URL shows:
    log lines, errors, their chains)."""
    try:
        parts = urlsplit(url)
        password = parts.password
    except ValueError:  # not a URL the client could send to anyway
        return []
    found = [unquote(password)] if password else []
    for name, value in parse_qsl(parts.query, keep_blank_values=False):
        if name.lower() in SENSITIVE_QUERY_PARAMETERS:
            found.append(value)
    return found


@functools.lru_cache(maxsize=64)
def shown_url(url: str) -> str:
    """``url`` with the credentials :func:`url_secrets` finds in it ``[REDACTED]`` (cached:
    LangChain asks for a model's identifying params, which show it, on every call)."""
    secrets = url_secrets(url)
    return Redactor(secrets).text(url) if secrets else url


def scrub(exc: _E, redactor: Redactor) -> _E:
    """Remove ``redactor``'s secrets from ``exc`` and every exception linked to it; return it.

    The walk follows ``__cause__``, ``__context__`` and the members of exception groups. Each
    :class:`AzmlError` on the way is redacted in place: its string fields (``message``, ``body``,
    ``url``, ``model_reason``, ...), its ``headers`` (see :meth:`Redactor.headers`), its
    ``args`` and notes, so ``str()``, ``repr()`` and a pickle of it are clean. Any other
    exception is not ours to edit: when its ``str()``, ``repr()`` or notes show a secret, the
    chain is cut above it (the link set to None, ``__suppress_context__`` set), so a traceback
    never prints it. ``exc`` itself is never replaced; callers pass their own error.
    """
    if not redactor:
        return exc
    seen: set[int] = set()
    pending: list[BaseException] = [exc]
    # A loop, not recursion: a retry loop can build a long __context__ chain, and this must
    # never fail while an error is being reported.
    while pending:
        node = pending.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        if isinstance(node, AzmlError):
            _redact_fields(node, redactor)
        pending.extend(_members(node))
        for link in ("__cause__", "__context__"):
            linked: BaseException | None = getattr(node, link)
            if linked is None:
                continue
            if _leaks(linked, redactor):
                setattr(node, link, None)
                node.__suppress_context__ = True
            else:
                pending.append(linked)
    return exc


def _members(exc: BaseException) -> list[BaseException]:
    """The members of an exception group (``BaseExceptionGroup`` or its 3.10 backport)."""
    members = getattr(exc, "exceptions", None)
    if not isinstance(members, tuple):
        return []
    return [member for member in members if isinstance(member, BaseException)]


def _leaks(exc: BaseException, redactor: Redactor) -> bool:
    """Whether a foreign exception (or a group member we cannot remove) shows a secret.

    A group's ``repr()`` and traceback show its members, and its tuple of members cannot be
    edited: our members are redacted first, then one leaking foreign member condemns the
    group. (No cycle guard: a group's members exist before it, so nesting cannot loop.)
    """
    if isinstance(exc, AzmlError):
        _redact_fields(exc, redactor)  # again when the walk reaches it: a no-op by then
        return False
    if any([_leaks(member, redactor) for member in _members(exc)]):  # a list: redact them all
        return True
    texts: list[str] = []
    for render in (str, repr):
        try:
            texts.append(render(exc))
        except Exception:  # a broken __str__ prints as a placeholder: it shows nothing
            continue
    notes = getattr(exc, "__notes__", None)
    if isinstance(notes, list):
        texts.extend(note for note in notes if isinstance(note, str))
    return any(redactor.found(text) for text in texts)


def _redact_fields(exc: AzmlError, redactor: Redactor) -> None:
    for name, value in list(vars(exc).items()):
        redacted = _redact_value(value, redactor, header_map=name == "headers")
        if redacted is not value:
            setattr(exc, name, redacted)  # __notes__ lives in __dict__ too
    args = _redact_value(exc.args, redactor)
    if args is not exc.args:
        exc.args = args


def _redact_value(value: Any, redactor: Redactor, *, header_map: bool = False) -> Any:
    """``value`` redacted, or ``value`` itself when it holds no secret we can reach."""
    if isinstance(value, str):
        return redactor.text(value)
    if isinstance(value, builtins.bytes):
        return redactor.bytes(value)
    if header_map and isinstance(value, Mapping):
        return redactor.headers(value)
    if isinstance(value, (list, tuple)):
        items = [_redact_value(item, redactor) for item in value]
        if all(new is old for new, old in zip(items, value, strict=True)):
            return value
        return type(value)(items) if type(value) in (list, tuple) else items
    return value
