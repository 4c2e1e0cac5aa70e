"""Keypair fingerprints as Nova shows them, checked against `ssh-keygen -l -E md5` figures."""

from __future__ import annotations

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization

from stratus.compute import keypairs
from stratus.core import errors

ED25519 = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAICBkNrtlaCHHXI8ImOBPAhUZB6y2Gr66HQ475oNHCm0T test@host"
RSA = ("ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQDEpkCM5KakRJ/Fb+yXFYJgfo49UtWirKgJh3iLKzsECU3d8sz3jxV3LnKlbVDW6LFXbJu+"
       "wJbmPpzWspF3tLYEiJyBIDNkrvyuVUxSDCeA+kE8TPBUxMHW84h7Ji5gHpLFUIQrcq5LPNhVncvyielqpBd7xpKOkivrthqT/I5G6SssJTz"
       "U/UI2yEaFnnHJFw8Gb4hp55Ir3x7PPdCRjrdcSxT1Mtmz13YVcqXaVGt4I0Fttx5xdgO6/+uX/4I6QuBvGlHPufHuUh+VEfoDfqIAWtK2Dk"
       "O7dSr3bFO1dyX57EIQQI7OcffJ+X/vdzijIbsK/X3RMOL1nLv9ylDEteYB root@vm")
ECDSA = ("ecdsa-sha2-nistp256 AAAAE2VjZHNhLXNoYTItbmlzdHAyNTYAAAAIbmlzdHAyNTYAAABBBKcrfJ6BmdQEQ9kSgJHbti2SfWb80Wnj"
         "WFzUT3Hg/zED6CBoXaQwXlr/CuW+Em3j7DuorqMMxeGj3soR7UZFI2o= root@vm")


@pytest.mark.parametrize(("key", "expected"), [
    (ED25519, "75:15:43:51:32:ec:45:df:d9:1a:bf:88:24:27:b4:8a"),
    (RSA, "84:2c:fb:db:e8:7f:ee:10:f5:26:ad:8b:8f:9c:3e:77"),
    (ECDSA, "70:96:56:bc:c2:55:46:08:c8:01:15:92:c9:6d:da:2d"),
    (ED25519.rsplit(" ", 1)[0], "75:15:43:51:32:ec:45:df:d9:1a:bf:88:24:27:b4:8a"),  # no comment
    ("  " + RSA + "\n", "84:2c:fb:db:e8:7f:ee:10:f5:26:ad:8b:8f:9c:3e:77"),  # surrounding whitespace
])
def test_ssh_fingerprint_is_md5_of_the_key_blob(key: str, expected: str) -> None:
    assert keypairs.ssh_fingerprint(key) == expected
    assert keypairs.fingerprint(key, "ssh") == expected


@pytest.mark.parametrize("key", [
    "", "garbage", "ssh-rsa", "ssh-rsa !!!notbase64", "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAICBk",
    "ssh-unknown AAAAC3NzaC1lZDI1NTE5AAAAICBkNrtlaCHHXI8ImOBPAhUZB6y2Gr66HQ475oNHCm0T",
    ED25519.replace("ssh-ed25519", "ssh-rsa"),
    "-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VwAyEAIGQ2u2VoIcdcjwiY4E8CFRkHrLYavrodDjvmg0cKbRM=\n"
    "-----END PUBLIC KEY-----",
])
def test_what_is_not_an_openssh_public_key_is_refused(key: str) -> None:
    with pytest.raises(errors.BadRequest, match="Keypair data is invalid: failed to generate fingerprint"):
        keypairs.ssh_fingerprint(key)


def test_generated_ssh_key_matches_its_private_key() -> None:
    private, public = keypairs.generate("ssh", "u1")
    loaded = serialization.load_pem_private_key(private.encode(), password=None)
    own = loaded.public_key().public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
    assert public.startswith(own.decode() + " ")
    assert private.startswith("-----BEGIN RSA PRIVATE KEY-----")
    assert len(keypairs.ssh_fingerprint(public).split(":")) == 16


def test_generated_x509_certificate_has_the_sha1_fingerprint() -> None:
    private, cert_pem = keypairs.generate("x509", "u1")
    cert = x509.load_pem_x509_certificate(cert_pem.encode())
    expected = ":".join(f"{b:02x}" for b in cert.fingerprint(hashes.SHA1()))
    assert keypairs.fingerprint(cert_pem, "x509") == expected
    loaded = serialization.load_pem_private_key(private.encode(), password=None)
    assert loaded.public_key().public_numbers() == cert.public_key().public_numbers()  # type: ignore[union-attr]
    with pytest.raises(errors.BadRequest):
        keypairs.fingerprint(ED25519, "x509")


@pytest.mark.parametrize("name", ["ok name", "under_score-dash", "x" * 255])
def test_safe_names_pass(name: str) -> None:
    keypairs.check_name(name)


@pytest.mark.parametrize("name", ["", "x" * 256, "dot.name", "slash/", "ünïcode", "semi;colon"])
def test_unsafe_names_are_invalid(name: str) -> None:
    with pytest.raises(errors.BadRequest, match="Keypair data is invalid"):
        keypairs.check_name(name)
