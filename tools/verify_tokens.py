#!/usr/bin/env python3
"""An independent verifier of actix-device cookie tokens, written from docs/token-format.md.

It checks every vector in tests/vectors/tokens.json (or the file given as the first
argument): each token must be accepted with the recorded fields or rejected with the
recorded reason, and every key derivation must give the recorded key id and sub-keys.
It shares no code with the Rust crate.

Packages: `blake3` (BLAKE3 keyed hashing and key derivation) and `cryptography`
(AES-256-GCM-SIV for sealed v2; ChaCha20-Poly1305 for sealed v1, whose XChaCha20
construction is completed here with HChaCha20, implemented below from
draft-irtf-cfrg-xchacha-03 section 2.2 and checked against that draft's test vector).

Exit status 0 when everything matches, 1 otherwise. The last line is a summary such as
`vectors: 84 passed, 0 failed`.
"""

import hmac
import json
import struct
import sys
from pathlib import Path

import blake3
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCMSIV, ChaCha20Poly1305

MAX_TOKEN_LEN = 256
HEADER_LEN = 5
BODY_LEN = 25
TAG_LEN = 16
EXPIRY_LEN = 8
ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"

KEY_ID_CONTEXT = "actix-device 2026-11 key id v1"
SUBKEY_CONTEXTS = {
    "signed": "actix-device 2026-11 signed token v1",
    "sealed_v1": "actix-device 2026-11 sealed token v1",
    "sealed_v2": "actix-device 2026-11 sealed token v2",
}
# version byte -> (mode, format, nonce length)
FORMATS = {
    0x01: ("signed", "signed", 0),
    0x02: ("sealed", "sealed_v1", 24),
    0x03: ("sealed", "sealed_v2", 12),
}


class Rejected(Exception):
    """A token rejection; the argument is the reason's code."""


# --- key schedule -------------------------------------------------------------------


def key_id(secret: bytes) -> int:
    digest = blake3.blake3(secret, derive_key_context=KEY_ID_CONTEXT).digest()
    return int.from_bytes(digest[:4], "big")


def subkey(fmt: str, purpose: str, secret: bytes) -> bytes:
    p = purpose.encode()
    material = struct.pack(">Q", len(p)) + p + secret
    return blake3.blake3(material, derive_key_context=SUBKEY_CONTEXTS[fmt]).digest()


def context_bytes(cookie_name: str, purpose: str) -> bytes:
    out = b""
    for part in (cookie_name.encode(), purpose.encode()):
        out += struct.pack(">I", len(part)) + part
    return out


# --- XChaCha20-Poly1305 from HChaCha20 + ChaCha20-Poly1305 ---------------------------

MASK = 0xFFFFFFFF


def _rotl(v: int, c: int) -> int:
    return ((v << c) & MASK) | (v >> (32 - c))


def _quarter_round(s: list, a: int, b: int, c: int, d: int) -> None:
    s[a] = (s[a] + s[b]) & MASK
    s[d] = _rotl(s[d] ^ s[a], 16)
    s[c] = (s[c] + s[d]) & MASK
    s[b] = _rotl(s[b] ^ s[c], 12)
    s[a] = (s[a] + s[b]) & MASK
    s[d] = _rotl(s[d] ^ s[a], 8)
    s[c] = (s[c] + s[d]) & MASK
    s[b] = _rotl(s[b] ^ s[c], 7)


def hchacha20(key: bytes, nonce16: bytes) -> bytes:
    s = [0x61707865, 0x3320646E, 0x79622D32, 0x6B206574]
    s += list(struct.unpack("<8I", key)) + list(struct.unpack("<4I", nonce16))
    for _ in range(10):
        for a, b, c, d in ((0, 4, 8, 12), (1, 5, 9, 13), (2, 6, 10, 14), (3, 7, 11, 15)):
            _quarter_round(s, a, b, c, d)
        for a, b, c, d in ((0, 5, 10, 15), (1, 6, 11, 12), (2, 7, 8, 13), (3, 4, 9, 14)):
            _quarter_round(s, a, b, c, d)
    return struct.pack("<8I", *(s[0:4] + s[12:16]))


def xchacha20poly1305_decrypt(key: bytes, nonce24: bytes, sealed: bytes, aad: bytes) -> bytes:
    sub = hchacha20(key, nonce24[:16])
    return ChaCha20Poly1305(sub).decrypt(b"\0\0\0\0" + nonce24[16:], sealed, aad)


def hchacha20_self_test() -> bool:
    """draft-irtf-cfrg-xchacha-03, section 2.2.1."""
    key = bytes(range(32))
    nonce = bytes.fromhex("000000090000004a0000000031415927")
    want = "82413b4227b27bfed30e42508a877d73a0f9e4d58a74a853c12ec41326d3ecdc"
    return hchacha20(key, nonce).hex() == want


# --- the verification steps of docs/token-format.md, in order ------------------------


def canonical_b64url_decode(text: str) -> bytes:
    if any(ch not in ALPHABET for ch in text) or len(text) % 4 == 1:
        raise Rejected("malformed")
    bits = 0
    nbits = 0
    out = bytearray()
    for ch in text:
        bits = (bits << 6) | ALPHABET.index(ch)
        nbits += 6
        if nbits >= 8:
            nbits -= 8
            out.append((bits >> nbits) & 0xFF)
    if bits & ((1 << nbits) - 1):  # unused trailing bits must be zero
        raise Rejected("malformed")
    return bytes(out)


def parse_plain_id(value: bytes):
    if len(value) != 36:
        return None
    for i, ch in enumerate(value):
        if i in (8, 13, 18, 23):
            if ch != ord("-"):
                return None
        elif ch not in b"0123456789abcdef":
            return None
    return value.decode()


def open_token(fmt: str, nonce_len: int, sub: bytes, ctx: bytes, raw: bytes):
    """The body if `raw`'s tag verifies under `sub`, else None."""
    if fmt == "signed":
        signed, tag = raw[:-TAG_LEN], raw[-TAG_LEN:]
        want = blake3.blake3(ctx + signed, key=sub).digest()[:TAG_LEN]
        return signed[HEADER_LEN:] if hmac.compare_digest(want, tag) else None
    head = raw[:HEADER_LEN]
    nonce = raw[HEADER_LEN : HEADER_LEN + nonce_len]
    sealed = raw[HEADER_LEN + nonce_len :]
    try:
        if fmt == "sealed_v2":
            return AESGCMSIV(sub).decrypt(nonce, sealed, ctx + head)
        return xchacha20poly1305_decrypt(sub, nonce, sealed, ctx + head)
    except InvalidTag:
        return None


def parse_body(body: bytes):
    device_id, issued_at, rest = body[:16], int.from_bytes(body[16:24], "big"), body[24:]
    if rest == b"\x00":
        expires_at = None
    elif len(rest) == 9 and rest[0] == 1:
        expires_at = int.from_bytes(rest[1:], "big")
    else:
        raise Rejected("malformed")
    h = device_id.hex()
    text = f"{h[0:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:32]}"
    return text, issued_at, expires_at


def verify(v: dict) -> dict:
    """Returns the accepted token's fields; raises Rejected(reason)."""
    value = v["token"].encode()
    mode = v["mode"]
    if len(value) > MAX_TOKEN_LEN:
        raise Rejected("too_long")
    plain = parse_plain_id(value)
    if mode == "plain":
        if plain is None:
            raise Rejected("malformed")
        return accepted(plain, None, None, None, False, False)
    if plain is not None:
        raise Rejected("wrong_mode")
    raw = canonical_b64url_decode(v["token"])
    if not raw:
        raise Rejected("malformed")
    if raw[0] not in FORMATS:
        raise Rejected("unknown_version")
    token_mode, fmt, nonce_len = FORMATS[raw[0]]
    if token_mode != mode:
        raise Rejected("wrong_mode")
    without = HEADER_LEN + nonce_len + BODY_LEN + TAG_LEN
    if len(raw) not in (without, without + EXPIRY_LEN):
        raise Rejected("malformed")
    kid = int.from_bytes(raw[1:5], "big")
    secrets = [bytes.fromhex(k) for k in v["keys"]]
    candidates = [(i, s) for i, s in enumerate(secrets) if key_id(s) == kid]
    if not candidates:
        raise Rejected("unknown_key")
    ctx = context_bytes(v["cookie_name"], v["purpose"])
    for index, secret in candidates:
        body = open_token(fmt, nonce_len, subkey(fmt, v["purpose"], secret), ctx, raw)
        if body is not None:
            break
    else:
        raise Rejected("bad_tag")
    device_id, issued_at, expires_at = parse_body(body)
    now, lifetime = v["now"], v["lifetime"]
    if expires_at is not None and now >= expires_at:
        raise Rejected("expired")
    if lifetime is not None and now >= min(issued_at + max(lifetime, 1), 2**64 - 1):
        raise Rejected("expired")
    return accepted(device_id, kid, issued_at, expires_at, index > 0, fmt == "sealed_v1")


def accepted(device_id, kid, issued_at, expires_at, retired, legacy) -> dict:
    return {
        "result": "accept",
        "id": device_id,
        "key_id": kid,
        "issued_at": issued_at,
        "expires_at": expires_at,
        "retired_key": retired,
        "legacy_format": legacy,
    }


def check_derivation(d: dict) -> list:
    secret = bytes.fromhex(d["secret"])
    problems = []
    if key_id(secret) != d["key_id"]:
        problems.append("key_id")
    for fmt in SUBKEY_CONTEXTS:
        if subkey(fmt, d["purpose"], secret).hex() != d[f"{fmt}_subkey"]:
            problems.append(f"{fmt}_subkey")
    return problems


def main() -> int:
    default = Path(__file__).resolve().parent.parent / "tests" / "vectors" / "tokens.json"
    path = Path(sys.argv[1]) if len(sys.argv) > 1 else default
    data = json.loads(path.read_text())
    failed = 0
    if not hchacha20_self_test():
        print("FAIL hchacha20 self-test (draft-irtf-cfrg-xchacha-03 2.2.1)")
        failed += 1
    for d in data["derivations"]:
        problems = check_derivation(d)
        if problems:
            print(f"FAIL derivation of key {d['key_id']:08x} for {d['purpose']!r}: {problems}")
            failed += 1
    passed = 0
    for v in data["vectors"]:
        try:
            got = verify(v)
        except Rejected as r:
            got = {"result": "reject", "reason": r.args[0]}
        if got == v["expect"]:
            passed += 1
        else:
            failed += 1
            print(f"FAIL {v['name']}: expected {v['expect']}, got {got}")
    print(
        f"derivations: {len(data['derivations'])} checked; "
        f"modes: {sorted({v['mode'] for v in data['vectors']})}"
    )
    print(f"vectors: {passed} passed, {failed} failed")
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
