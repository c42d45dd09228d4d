"""All three signature schemes, over raw bytes, against wrong keys and altered bodies."""

from __future__ import annotations

import base64

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.rsa import generate_private_key

from trainu_dagster.ghl.signatures import (
    ED25519_HEADER,
    HMAC_HEADER,
    RSA_HEADER,
    SignatureRejected,
    WebhookKeys,
    hmac_signature,
    load_ed25519_public_key,
    load_rsa_public_key,
    sign_ed25519,
    sign_rsa,
    verify_marketplace,
    verify_workflow,
)
from trainu_dagster.settings import Settings

BODY = b'{"type":"ContactCreate","locationId":"loc","id":"c1","timestamp":"2026-11-24T10:00:00Z"}'
ED = Ed25519PrivateKey.generate()
RSA = generate_private_key(public_exponent=65537, key_size=2048)
ED_PUBLIC_PEM = (
    ED.public_key()
    .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    .decode()
)
KEYS = WebhookKeys(
    ed25519=load_ed25519_public_key(ED_PUBLIC_PEM), rsa=RSA.public_key(), hmac_secret=b"s3cret"
)


def test_valid_signatures_verify_with_their_scheme() -> None:
    assert verify_marketplace(BODY, {ED25519_HEADER: sign_ed25519(BODY, ED)}, KEYS) == "ed25519"
    assert verify_marketplace(BODY, {RSA_HEADER: sign_rsa(BODY, RSA)}, KEYS) == "rsa-sha256"
    signature = "sha256=" + hmac_signature(BODY, b"s3cret")
    assert verify_workflow(BODY, {HMAC_HEADER: signature}, KEYS) == "hmac-sha256"
    assert verify_workflow(BODY, {HMAC_HEADER: signature.removeprefix("sha256=")}, KEYS)


@pytest.mark.parametrize(
    ("headers", "reason"),
    [
        ({ED25519_HEADER: sign_ed25519(BODY, Ed25519PrivateKey.generate())}, "bad ed25519"),
        (
            {
                RSA_HEADER: sign_rsa(
                    BODY, generate_private_key(public_exponent=65537, key_size=2048)
                )
            },
            "bad rsa-sha256",
        ),
        ({ED25519_HEADER: sign_ed25519(BODY + b" ", ED)}, "bad ed25519"),
        ({RSA_HEADER: sign_rsa(BODY.replace(b"c1", b"c2"), RSA)}, "bad rsa-sha256"),
        ({ED25519_HEADER: "not base64!"}, "not valid base64"),
        ({}, "missing signature"),
    ],
)
def test_wrong_keys_and_altered_bodies_are_rejected(headers: dict, reason: str) -> None:
    with pytest.raises(SignatureRejected, match=reason):
        verify_marketplace(BODY, headers, KEYS)


def test_a_bad_ed25519_signature_is_not_rescued_by_a_missing_rsa_key() -> None:
    keys = WebhookKeys(ed25519=load_ed25519_public_key(ED_PUBLIC_PEM))
    bad = {ED25519_HEADER: sign_ed25519(b"other", ED), RSA_HEADER: sign_rsa(BODY, RSA)}
    with pytest.raises(SignatureRejected):
        verify_marketplace(BODY, bad, keys)


def test_either_valid_scheme_suffices_while_both_are_sent() -> None:
    headers = {ED25519_HEADER: sign_ed25519(b"tampered", ED), RSA_HEADER: sign_rsa(BODY, RSA)}
    assert verify_marketplace(BODY, headers, KEYS) == "rsa-sha256"


def test_verification_uses_the_raw_bytes_not_equivalent_json() -> None:
    reserialised = BODY.replace(b'","', b'", "').replace(b'":"', b'": "')
    assert reserialised != BODY
    with pytest.raises(SignatureRejected):
        verify_marketplace(reserialised, {ED25519_HEADER: sign_ed25519(BODY, ED)}, KEYS)


@pytest.mark.parametrize(
    ("headers", "keys", "reason"),
    [
        ({HMAC_HEADER: hmac_signature(BODY, b"wrong")}, KEYS, "bad hmac"),
        ({HMAC_HEADER: hmac_signature(BODY + b"x", b"s3cret")}, KEYS, "bad hmac"),
        ({}, KEYS, "missing signature"),
        ({HMAC_HEADER: hmac_signature(BODY, b"s3cret")}, WebhookKeys(), "no shared secret"),
    ],
)
def test_workflow_hmac_rejections(headers: dict, keys: WebhookKeys, reason: str) -> None:
    with pytest.raises(SignatureRejected, match=reason):
        verify_workflow(BODY, headers, keys)


def test_ed25519_key_loads_from_pem_or_base64() -> None:
    public = ED.public_key()
    pem = public.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    for text in (pem.decode(), base64.b64encode(raw).decode()):
        key = load_ed25519_public_key(text)
        assert key.verify(BODY, ED.sign(BODY)) == BODY
    with pytest.raises(ValueError, match="neither PEM nor base64"):
        load_ed25519_public_key("???")
    with pytest.raises(ValueError, match="32 bytes"):
        load_ed25519_public_key(base64.b64encode(b"short").decode())


def test_ghls_published_rsa_key_ships_with_the_project() -> None:
    key = load_rsa_public_key(Settings().webhook_rsa_public_key_path)
    assert key.key_size >= 2048
