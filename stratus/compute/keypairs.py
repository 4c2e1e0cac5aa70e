"""Keypairs: generated or imported public keys (OpenSSH) and x509 certificates, with the
fingerprints Nova computes (MD5 of the key blob for ssh, SHA-1 of the DER certificate for x509)."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import string

import sqlalchemy as sa
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
from sqlalchemy.orm import Session

from stratus.compute import models, quotas
from stratus.core import errors
from stratus.core.config import ComputeConfig

_SAFE = set("_- " + string.digits + string.ascii_letters)


def invalid_keypair(reason: str) -> errors.BadRequest:
    return errors.BadRequest(f"Keypair data is invalid: {reason}")


def not_found(user_id: str, name: str) -> errors.NotFound:
    return errors.NotFound(f"Keypair {name} not found for user {user_id}")


def _colon_hex(digest: bytes) -> str:
    return ":".join(f"{byte:02x}" for byte in digest)


def ssh_fingerprint(public_key: str) -> str:
    """MD5 of the decoded key blob in colon-separated hex; 400 when it is not an OpenSSH public key."""
    try:
        serialization.load_ssh_public_key(public_key.strip().encode())
        blob = base64.b64decode(public_key.split()[1], validate=True)
    except Exception:  # ValueError, binascii.Error, IndexError, and UnsupportedAlgorithm for unknown types
        raise invalid_keypair("failed to generate fingerprint") from None
    return _colon_hex(hashlib.md5(blob, usedforsecurity=False).digest())


def x509_fingerprint(certificate: str) -> str:
    """SHA-1 of the DER form of a PEM certificate, colon-separated hex."""
    try:
        cert = x509.load_pem_x509_certificate(certificate.encode())
    except (ValueError, UnicodeError, TypeError):
        raise invalid_keypair("failed to generate fingerprint") from None
    return _colon_hex(cert.fingerprint(hashes.SHA1()))  # noqa: S303 (the fingerprint Nova shows)


def fingerprint(public_key: str, key_type: str) -> str:
    return x509_fingerprint(public_key) if key_type == "x509" else ssh_fingerprint(public_key)


def generate(key_type: str, user_id: str) -> tuple[str, str]:
    """A new key: (private key PEM, public key). ssh: RSA 2048 as OpenSSH public key; x509: the same
    key with a self-signed certificate (PEM) as the public part."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
                                serialization.NoEncryption()).decode()
    if key_type == "x509":
        now = dt.datetime.now(dt.UTC)
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, user_id or "stratus")])
        cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject).public_key(key.public_key())
                .serial_number(x509.random_serial_number()).not_valid_before(now)
                .not_valid_after(now + dt.timedelta(days=3650)).sign(key, hashes.SHA256()))
        return private, cert.public_bytes(serialization.Encoding.PEM).decode()
    public = key.public_key().public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
    return private, public.decode() + " Generated-by-Stratus\n"


def check_name(name: str) -> None:
    if any(char not in _SAFE for char in name):
        raise invalid_keypair("Keypair name contains unsafe characters")
    if not 1 <= len(name) <= 255:
        raise invalid_keypair("Keypair name must be string and between 1 and 255 characters long")


def count(session: Session, user_id: str) -> int:
    return session.scalar(sa.select(sa.func.count()).select_from(models.KeyPair)
                          .where(models.KeyPair.user_id == user_id)) or 0


def create(session: Session, settings: ComputeConfig, project_id: str, user_id: str, name: str, key_type: str,
           public_key: str | None) -> tuple[models.KeyPair, str | None]:
    """Import `public_key` or generate a key; returns the row and the private key (generated only)."""
    check_name(name)
    private = None
    if public_key is None:
        private, public_key = generate(key_type, user_id)
    print_ = fingerprint(public_key, key_type)
    quotas.lock_project(session, project_id)
    limit = quotas.limits(session, project_id, settings)["key_pairs"]
    if limit >= 0 and count(session, user_id) + 1 > limit:
        raise errors.OverLimit("Maximum number of key pairs exceeded")
    if session.scalar(sa.select(models.KeyPair.id).where(models.KeyPair.user_id == user_id,
                                                         models.KeyPair.name == name)) is not None:
        raise errors.Conflict(f"Key pair '{name}' already exists.")
    row = models.KeyPair(user_id=user_id, name=name, type=key_type, public_key=public_key, fingerprint=print_)
    session.add(row)
    session.flush()
    return row, private


def get_keypair(session: Session, user_id: str, name: str) -> models.KeyPair:
    """The user's keypair `name`; 404 when the user has none of that name."""
    row = session.scalar(sa.select(models.KeyPair).where(models.KeyPair.user_id == user_id,
                                                         models.KeyPair.name == name))
    if row is None:
        raise not_found(user_id, name)
    return row
