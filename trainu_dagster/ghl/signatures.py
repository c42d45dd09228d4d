"""Webhook signature verification over the raw request bytes.

GHL signs Marketplace webhooks with Ed25519 (`x-ghl-signature`) and, until the legacy
scheme is retired, RSA PKCS#1 v1.5 + SHA-256 (`x-wh-signature`). Workflow webhooks have
no GHL signature, so TrainU protects them with an HMAC-SHA256 shared secret.
Verification always runs on the bytes as received: re-serialised JSON would not match.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey, RSAPublicKey
from nacl.exceptions import BadSignatureError
from nacl.signing import VerifyKey

Scheme = Literal["ed25519", "rsa-sha256", "hmac-sha256"]
ED25519_HEADER = "x-ghl-signature"
RSA_HEADER = "x-wh-signature"
HMAC_HEADER = "x-trainu-signature"


class SignatureRejected(Exception):
    """The request is not provably from GHL (or our workflow); `reason` is safe to record."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class WebhookKeys:
    # libsodium (PyNaCl) verifies Ed25519 about twice as fast as OpenSSL here, and it is
    # paid on every delivery.
    ed25519: VerifyKey | None = None
    rsa: RSAPublicKey | None = None
    hmac_secret: bytes | None = None


def load_ed25519_public_key(text: str) -> VerifyKey:
    """Accept a PEM public key or the bare 32-byte key in base64."""
    stripped = text.strip()
    if stripped.startswith("-----BEGIN"):
        key = serialization.load_pem_public_key(stripped.encode())
        if not isinstance(key, Ed25519PublicKey):
            raise ValueError("the configured webhook public key is not an Ed25519 key")
        raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    else:
        try:
            raw = base64.b64decode(stripped, validate=True)
        except binascii.Error as exc:
            raise ValueError("the Ed25519 webhook key is neither PEM nor base64") from exc
    if len(raw) != 32:
        raise ValueError("an Ed25519 public key is 32 bytes")
    return VerifyKey(raw)


def load_rsa_public_key(path: Path) -> RSAPublicKey:
    key = serialization.load_pem_public_key(path.read_bytes())
    if not isinstance(key, RSAPublicKey):
        raise ValueError(f"{path} does not hold an RSA public key")
    return key


def _decode_b64(value: str, header: str) -> bytes:
    try:
        return base64.b64decode(value, validate=True)
    except binascii.Error as exc:
        raise SignatureRejected(f"{header} is not valid base64") from exc


def verify_marketplace(body: bytes, headers: Mapping[str, str], keys: WebhookKeys) -> Scheme:
    """Return the scheme that proved the body authentic, or raise SignatureRejected.

    Either configured scheme suffices (GHL sends both while the legacy one is retired);
    a present but wrong signature is never rescued by a missing one.
    """
    ed_sig, rsa_sig = headers.get(ED25519_HEADER), headers.get(RSA_HEADER)
    if ed_sig and keys.ed25519 is not None:
        try:
            keys.ed25519.verify(body, _decode_b64(ed_sig, ED25519_HEADER))
            return "ed25519"
        except (BadSignatureError, ValueError):  # ValueError: not 64 bytes
            if not (rsa_sig and keys.rsa is not None):
                raise SignatureRejected("bad ed25519 signature") from None
    if rsa_sig and keys.rsa is not None:
        try:
            keys.rsa.verify(
                _decode_b64(rsa_sig, RSA_HEADER), body, padding.PKCS1v15(), hashes.SHA256()
            )
            return "rsa-sha256"
        except InvalidSignature:
            raise SignatureRejected("bad rsa-sha256 signature") from None
    if ed_sig or rsa_sig:
        raise SignatureRejected("signed with a scheme that has no configured key")
    raise SignatureRejected("missing signature")


def hmac_signature(body: bytes, secret: bytes) -> str:
    return hmac.new(secret, body, hashlib.sha256).hexdigest()


def verify_workflow(body: bytes, headers: Mapping[str, str], keys: WebhookKeys) -> Scheme:
    """HMAC-SHA256 of the body, hex, optionally prefixed `sha256=`; constant-time compare."""
    if keys.hmac_secret is None:
        raise SignatureRejected("workflow webhooks are disabled: no shared secret configured")
    presented = headers.get(HMAC_HEADER)
    if not presented:
        raise SignatureRejected("missing signature")
    presented = presented.removeprefix("sha256=").strip().lower()
    expected = hmac_signature(body, keys.hmac_secret)
    if not hmac.compare_digest(presented.encode(), expected.encode()):
        raise SignatureRejected("bad hmac-sha256 signature")
    return "hmac-sha256"


# --- the sender's side: what GHL does, for the local simulator, tests and benchmarks ----


def sign_ed25519(body: bytes, key: Ed25519PrivateKey) -> str:
    return base64.b64encode(key.sign(body)).decode()


def sign_rsa(body: bytes, key: RSAPrivateKey) -> str:
    return base64.b64encode(key.sign(body, padding.PKCS1v15(), hashes.SHA256())).decode()
