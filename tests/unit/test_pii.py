"""Crypto-shredding primitives: encrypted fields stay strings, decrypt with the key, read as erased without it."""

from __future__ import annotations

import os

import orjson

from zapstream_platform import pii


def test_encrypted_fields_decrypt_with_the_subjects_key_and_read_erased_without_it() -> None:
    key = os.urandom(32)
    payload = {"userId": "u1", "email": "ada@example.com", "name": "Ada", "role": "owner"}
    stored = pii.encrypt_fields(payload, ("email", "name"), key, "u1")
    raw = orjson.dumps(stored)
    assert b"ada@example.com" not in raw and b"Ada" not in raw
    assert stored["role"] == "owner" and pii.is_encrypted(stored["email"])
    assert pii.subjects_in({"payload": stored}) == {"u1"}
    assert pii.reveal(stored, {"u1": key}) == payload
    assert pii.reveal(stored, {}) == {**payload, "email": pii.ERASED, "name": pii.ERASED}


def test_a_ciphertext_moved_to_another_field_or_key_does_not_decrypt() -> None:
    key = os.urandom(32)
    stored = pii.encrypt_fields({"email": "a@b.c", "name": "A"}, ("email", "name"), key, "u1")
    swapped = {"email": stored["name"], "name": stored["email"]}
    assert pii.reveal(swapped, {"u1": key}) == {"email": pii.ERASED, "name": pii.ERASED}
    assert pii.reveal(stored, {"u1": os.urandom(32)})["email"] == pii.ERASED


def test_each_write_uses_a_fresh_nonce() -> None:
    key = os.urandom(32)
    assert pii.encrypt(key, "u1", "email", "x") != pii.encrypt(key, "u1", "email", "x")
