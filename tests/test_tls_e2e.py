"""HTTPS through the real CLI: certificates are checked against the trust store, and a
certificate it does not trust stops every request with a reason a person can act on."""

from __future__ import annotations

import datetime
import ipaddress
import json
import ssl
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.cli_helpers import assert_no_traceback, cli
from tests.e2e import failure_rows
from tests.hostile import servers

pytestmark = pytest.mark.e2e

KEY = "tls-test-key-0123456789"


def self_signed(folder: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 (an IP address in its subject alternative names)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "metrix-importer test")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = folder / "cert.pem", folder / "key.pem"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


def run(tmp_path: Path, url: str, env: dict[str, str]) -> tuple[int, str]:
    data = tmp_path / "users.csv"
    data.write_text("id,email\n" + "".join(f"u{n},u{n}@example.com\n" for n in range(3)))
    mapping = tmp_path / "users.yaml"
    mapping.write_text("user_id: id\nfields:\n  email: email\n")
    result = cli(
        "run", data, "-m", mapping, "--endpoint", url, "--no-progress", "--max-retries", "1",
        "--failures", tmp_path / "failures.csv", "--summary-json", tmp_path / "summary.json",
        cwd=tmp_path, env={"METRIX_APP_ID": "app", "METRIX_API_KEY": KEY, **env},
    )  # fmt: skip
    assert_no_traceback(result)
    assert KEY not in result.stdout + result.stderr
    return result.returncode, result.stderr


def tls_context(cert: Path, key: Path) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    return context


def test_https_to_a_trusted_certificate_delivers_every_row(tmp_path: Path) -> None:
    cert, key = self_signed(tmp_path)
    with servers.serve(servers.accepting(), tls=tls_context(cert, key)) as server:
        # SSL_CERT_FILE: OpenSSL's own way to name the trust store; here, the test's CA.
        code, stderr = run(tmp_path, server.url, {"SSL_CERT_FILE": str(cert)})
    assert code == 0, stderr
    assert sorted(json.loads(seen.body)["customUserId"] for seen in server.requests) == [
        "u0", "u1", "u2",
    ]  # fmt: skip
    assert all(seen.headers["x-api-key"] == KEY for seen in server.requests)


def test_an_untrusted_certificate_sends_nothing_and_says_why(tmp_path: Path) -> None:
    cert, key = self_signed(tmp_path)
    with servers.serve(servers.accepting(), tls=tls_context(cert, key)) as server:
        code, stderr = run(tmp_path, server.url, {})
    assert code == 1, stderr
    assert server.requests == []  # neither the key nor a row crossed the connection
    rows = failure_rows(tmp_path / "failures.csv")
    assert len(rows) == 3
    for row in rows:
        assert row["_stage"] == "not_sent"
        assert "cannot connect" in row["_error"] and "certificate" in row["_error"], row
