"""Who may call what: read or write permission from a client certificate or a bearer token.

TLS alone says only that the network is private; this module decides, per RPC, whether
the caller may read (the get RPCs) or write (the put RPCs):

- Mutual TLS: a client certificate the server verified (``ssl_config.client_verify``)
  whose common name or one of whose subject alternative names was granted ``read`` or
  ``write`` (``--grant-read NAME``, ``--grant-write NAME``).
- Bearer tokens: ``authorization: Bearer <token>`` call metadata, for clients that cannot
  present a certificate. Tokens come from a file (never the command line, where ``ps``
  shows them); only their SHA-256 digests are kept, compared in constant time.
- ``--read-only``: nobody may write, whatever they were granted.

With neither grants nor tokens every caller may read and write (as before). Missing or
invalid credentials are UNAUTHENTICATED; valid ones without the permission an RPC needs
are PERMISSION_DENIED. The decision is made in one place, ``AccessPolicy.authorize``.
"""
from __future__ import annotations

import enum
import hashlib
import hmac
import os
import stat
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping, Optional, Sequence

from mlmd_log import errors
from mlmd_log.producer.records import PUT_RPCS

TOKEN_DIGEST_PREFIX = "sha256:"
MIN_TOKEN_CHARS = 16  # shorter than this is a password someone typed, not a token
_BEARER = "bearer "


class Permission(enum.IntEnum):
    """What a caller may do; WRITE includes READ."""

    NONE = 0
    READ = 1
    WRITE = 2

    @classmethod
    def named(cls, name: str) -> "Permission":
        try:
            return {"read": cls.READ, "write": cls.WRITE}[name.lower()]
        except KeyError:
            raise errors.InvalidArgumentError(f"permission must be read or write, not {name!r}") from None


def needed_for(rpc: str) -> Permission:
    """A put changes the store; every other RPC of the service only reads it."""
    return Permission.WRITE if rpc in PUT_RPCS else Permission.READ


def token_digest(token: str) -> bytes:
    return hashlib.sha256(token.encode("utf-8")).digest()


@dataclass(frozen=True)
class TokenGrant:
    """One line of a tokens file: a token's digest, its permission, a name for the logs."""

    digest: bytes
    permission: Permission
    name: str


def parse_tokens(text: str, source: str = "tokens file") -> list[TokenGrant]:
    """Lines ``PERMISSION TOKEN [NAME]``: ``read`` or ``write``, the token itself or
    ``sha256:<hex digest>`` of it, and an optional name that log lines use instead of
    the token. Blank lines and ``#`` comments are skipped. Errors name the line, never
    what is on it."""
    grants: list[TokenGrant] = []
    for number, line in enumerate(text.splitlines(), 1):
        words = line.split("#", 1)[0].split()
        if not words:
            continue
        if len(words) not in (2, 3):
            raise errors.InvalidArgumentError(f"{source} line {number}: expected PERMISSION TOKEN [NAME]")
        permission = Permission.named(words[0])
        secret = words[1]
        name = words[2] if len(words) == 3 else f"token on line {number}"
        if secret.startswith(TOKEN_DIGEST_PREFIX):
            try:
                digest = bytes.fromhex(secret[len(TOKEN_DIGEST_PREFIX):])
            except ValueError:
                digest = b""
            if len(digest) != hashlib.sha256().digest_size:
                raise errors.InvalidArgumentError(f"{source} line {number}: sha256: needs 64 hex digits")
        elif len(secret) < MIN_TOKEN_CHARS:
            raise errors.InvalidArgumentError(
                f"{source} line {number}: a token needs at least {MIN_TOKEN_CHARS} characters")
        else:
            digest = token_digest(secret)
        grants.append(TokenGrant(digest, permission, name))
    return grants


def load_tokens(path: str) -> tuple[list[TokenGrant], list[str]]:
    """The grants of a tokens file, and a warning when others than its owner may read the
    tokens in it."""
    try:
        with open(path, encoding="utf-8") as f:
            mode = os.fstat(f.fileno()).st_mode
            text = f.read()
    except OSError as exc:
        raise errors.InvalidArgumentError(f"Cannot read tokens file {path}: {exc.strerror}") from None
    warnings = []
    if mode & (stat.S_IRGRP | stat.S_IROTH) and not text_is_digests_only(text):
        warnings.append(f"tokens file {path} holds plain tokens and is readable by others than its owner "
                        "(chmod 600 it, or write sha256: digests instead)")
    return parse_tokens(text, f"tokens file {path}"), warnings


def text_is_digests_only(text: str) -> bool:
    lines = [line.split("#", 1)[0].split() for line in text.splitlines()]
    return all(len(words) < 2 or words[1].startswith(TOKEN_DIGEST_PREFIX) for words in lines)


@dataclass(frozen=True)
class Caller:
    """Who made a call (a certificate subject or a token's name: never the token) and what
    they may do."""

    name: str
    permission: Permission


@dataclass
class AccessPolicy:
    """Read/write grants by certificate subject and by token, and the read-only switch."""

    read_only: bool = False
    subjects: Mapping[str, Permission] = field(default_factory=dict)
    tokens: Sequence[TokenGrant] = ()
    warnings: list[str] = field(default_factory=list)  # (for the operator, when the server starts)

    @classmethod
    def build(cls, read_only: bool = False, grant_read: Iterable[str] = (), grant_write: Iterable[str] = (),
              tokens_file: Optional[str] = None) -> "AccessPolicy":
        subjects: dict[str, Permission] = {name: Permission.READ for name in grant_read}
        subjects.update({name: Permission.WRITE for name in grant_write})
        tokens, warnings = load_tokens(tokens_file) if tokens_file else ([], [])
        return cls(read_only, subjects, tokens, warnings)

    @property
    def checks_callers(self) -> bool:
        """False when nobody was granted anything: every caller is let in (TLS, if any, is
        the only gate)."""
        return bool(self.subjects or self.tokens)

    def check_transport(self, client_verify: bool, tls: bool) -> list[str]:
        """Refuses grants that could never match (a server that does not verify client
        certificates never sees one); returns what the operator should be warned of."""
        if self.subjects and not client_verify:
            raise errors.InvalidArgumentError(
                "--grant-read/--grant-write name client certificates: they need ssl_config with client_verify: true "
                "(mutual TLS) in --config")
        if self.tokens and not tls:
            return self.warnings + ["bearer tokens on a server without TLS travel in clear text; give --config "
                                    "an ssl_config"]
        return list(self.warnings)

    def authorize(self, rpc: str, context: Any) -> Caller:
        """The caller of ``rpc`` if they may make it; UnauthenticatedError without valid
        credentials, PermissionDeniedError with too little permission or on a read-only
        server."""
        caller = self.caller(context) if self.checks_callers else Caller("anyone", Permission.WRITE)
        needed = needed_for(rpc)
        if needed is Permission.WRITE and self.read_only:
            raise errors.PermissionDeniedError(
                f"{rpc} is refused: this server is read-only (mlmd-log serve --read-only); reads are served")
        if caller.permission < needed:
            raise errors.PermissionDeniedError(
                f"{rpc} needs {needed.name.lower()} permission; {caller.name} has "
                f"{caller.permission.name.lower() if caller.permission else 'none'}")
        return caller

    def caller(self, context: Any) -> Caller:
        """From a bearer token when the call carries one, else from the verified client
        certificate."""
        token = bearer_token(context.invocation_metadata() or ())
        if token is not None:
            grant = self._grant_for(token)
            if grant is None:
                raise errors.UnauthenticatedError("The bearer token is not valid for this server")
            return Caller(grant.name, grant.permission)
        names = certificate_names(context.auth_context() or {})
        if not names:
            raise errors.UnauthenticatedError(
                "This server needs credentials: an 'authorization: Bearer <token>' header or a client certificate")
        permission = max((self.subjects.get(name, Permission.NONE) for name in names), default=Permission.NONE)
        return Caller(f"client certificate {names[0]!r}", permission)

    def _grant_for(self, token: str) -> Optional[TokenGrant]:
        """The token's grant; every digest is compared, in constant time, so how long the
        answer takes tells nothing about which token came close."""
        digest = token_digest(token)
        found = None
        for grant in self.tokens:
            if hmac.compare_digest(grant.digest, digest):
                found = grant
        return found


def bearer_token(metadata: Iterable[Any]) -> Optional[str]:
    """The token of an ``authorization: Bearer <token>`` header; '' for a malformed one."""
    for key, value in metadata:
        if key.lower() != "authorization":
            continue
        text = value.decode("latin-1") if isinstance(value, bytes) else value
        return text[len(_BEARER):].strip() if text.lower().startswith(_BEARER) else ""
    return None


def certificate_names(auth_context: Mapping[str, Sequence[bytes]]) -> list[str]:
    """The common name and subject alternative names of the peer's verified certificate
    (gRPC lists them only after verifying it)."""
    names = [*auth_context.get("x509_common_name", ()), *auth_context.get("x509_subject_alternative_name", ())]
    return [name.decode("utf-8", "replace") if isinstance(name, bytes) else name for name in names]
