"""--ssl-*: HTTPS with certificates made by trustme, client certificates, and bad setups."""

from __future__ import annotations

import socket
import ssl
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import trustme
from cryptography.hazmat.primitives import serialization
from support import ROOT, TIMEOUT

from interpserve.errors import ServerFailed
from interpserve.testing import ServerProcess


@dataclass
class Certs:
    ca: trustme.CA
    ca_file: str
    cert_file: str
    key_file: str
    client: trustme.LeafCert

    def client_context(self, *, with_cert: bool = False) -> ssl.SSLContext:
        context = ssl.create_default_context(cafile=self.ca_file)
        if with_cert:
            self.client.configure_cert(context)
        return context


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Certs]:
    ca = trustme.CA()
    directory = tmp_path_factory.mktemp("certs")
    server = ca.issue_cert("127.0.0.1", "localhost")
    ca_file, cert_file, key_file = (directory / n for n in ("ca.pem", "cert.pem", "key.pem"))
    ca.cert_pem.write_to_path(str(ca_file))
    server.private_key_pem.write_to_path(str(key_file))
    cert_file.write_bytes(b"".join(blob.bytes() for blob in server.cert_chain_pems))
    yield Certs(ca, str(ca_file), str(cert_file), str(key_file), ca.issue_cert("client@example"))


def https_server(start_server, certs: Certs, *flags: str) -> ServerProcess:
    return start_server(
        "examples.hello:app",
        "--workers",
        "1",
        "--ssl-certfile",
        certs.cert_file,
        "--ssl-keyfile",
        certs.key_file,
        *flags,
    )


def test_https_with_scheme_in_scope(start_server, certs: Certs, http_impl: str) -> None:
    server = https_server(start_server, certs, "--http", http_impl)
    assert server.url.startswith("https://127.0.0.1:")
    assert "Listening on https://127.0.0.1:" in server.output
    with httpx.Client(verify=certs.client_context(), timeout=TIMEOUT) as client:
        assert client.get(server.url + "/").text == "Hello, world!"
        scope = client.get(server.url + "/scope").json()
        body = b"x" * 300_000
        echoed = client.post(server.url + "/echo", content=body).content
    assert scope["scheme"] == "https"
    assert echoed == body


def test_only_http_1_1_is_offered_without_http2(start_server, certs: Certs) -> None:
    server = https_server(start_server, certs, "--no-http2")
    context = certs.client_context()
    context.set_alpn_protocols(["h2", "http/1.1"])
    with (
        socket.create_connection((server.host, server.port), timeout=TIMEOUT) as raw,
        context.wrap_socket(raw, server_hostname="127.0.0.1") as tls,
    ):
        assert tls.selected_alpn_protocol() == "http/1.1"
        assert tls.version() in ("TLSv1.2", "TLSv1.3")


def test_encrypted_key_with_password(start_server, certs: Certs, tmp_path: Path) -> None:
    key = serialization.load_pem_private_key(Path(certs.key_file).read_bytes(), password=None)
    encrypted = tmp_path / "encrypted.pem"
    encrypted.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"s3cret"),
        )
    )
    server = start_server(
        "examples.hello:app",
        "--workers=1",
        f"--ssl-certfile={certs.cert_file}",
        f"--ssl-keyfile={encrypted}",
        env={"INTERPSERVE_SSL_KEYFILE_PASSWORD": "s3cret"},
    )
    response = httpx.get(server.url + "/", verify=certs.client_context(), timeout=TIMEOUT)
    assert response.status_code == 200


def test_required_client_certificate(start_server, certs: Certs) -> None:
    server = https_server(
        start_server, certs, "--ssl-cert-reqs", "2", "--ssl-ca-certs", certs.ca_file
    )
    with pytest.raises(httpx.TransportError):
        httpx.get(server.url + "/", verify=certs.client_context(), timeout=TIMEOUT)
    with httpx.Client(verify=certs.client_context(with_cert=True), timeout=TIMEOUT) as client:
        assert client.get(server.url + "/").status_code == 200


def test_optional_client_certificate(start_server, certs: Certs) -> None:
    server = https_server(
        start_server, certs, "--ssl-cert-reqs", "1", "--ssl-ca-certs", certs.ca_file
    )
    for with_cert in (False, True):
        context = certs.client_context(with_cert=with_cert)
        assert httpx.get(server.url + "/", verify=context, timeout=TIMEOUT).status_code == 200


def test_plain_http_to_the_tls_port_is_dropped(start_server, certs: Certs) -> None:
    server = https_server(start_server, certs)
    with socket.create_connection((server.host, server.port), timeout=TIMEOUT) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
        try:
            data = sock.recv(65536)
        except ConnectionResetError:
            data = b""
    assert not data.startswith(b"HTTP/")
    response = httpx.get(server.url + "/", verify=certs.client_context(), timeout=TIMEOUT)
    assert response.status_code == 200


def test_cipher_list_option(start_server, certs: Certs) -> None:
    server = https_server(start_server, certs, "--ssl-ciphers", "ECDHE+AESGCM")
    context = certs.client_context()
    context.maximum_version = ssl.TLSVersion.TLSv1_2  # (TLS 1.3 suites are not configurable)
    with httpx.Client(verify=context, timeout=TIMEOUT) as client:
        assert client.get(server.url + "/").status_code == 200


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (("--ssl-certfile", "/nonexistent/cert.pem"), "cannot set up TLS from --ssl-certfile"),
        (("--ssl-ciphers", "NO-SUCH-CIPHER"), "cannot set up TLS from --ssl-ciphers"),
        (("--ssl-ca-certs", "/nonexistent/ca.pem"), "cannot set up TLS from --ssl-ca-certs"),
        (("--ssl-cert-reqs", "3"), "ssl_cert_reqs must be 0, 1 or 2"),
    ],
)
def test_bad_tls_setup_stops_the_start(certs: Certs, flags: tuple[str, ...], message: str) -> None:
    cert = ("--ssl-certfile", certs.cert_file, "--ssl-keyfile", certs.key_file)
    server = ServerProcess("examples.hello:app", "--workers", "1", *cert, *flags, cwd=str(ROOT))
    with pytest.raises(ServerFailed):
        server.start(timeout=20)
    assert message in server.output
    assert "Traceback" not in server.output
    assert server.process is not None and server.process.returncode not in (0, None)


def test_a_certificate_given_as_the_key_stops_the_start(certs: Certs) -> None:
    server = ServerProcess(
        "examples.hello:app",
        "--ssl-certfile",
        certs.cert_file,
        "--ssl-keyfile",
        certs.cert_file,  # a certificate where the key should be
        cwd=str(ROOT),
    )
    with pytest.raises(ServerFailed):
        server.start(timeout=20)
    assert "cannot set up TLS from --ssl-certfile/--ssl-keyfile" in server.output


def test_an_app_makes_an_outbound_tls_connection_from_its_worker(
    start_server, certs: Certs, worker_kind: str
) -> None:
    """A worker imports ssl (and asyncio's TLS protocol) on first use, not at start
    (interpserve/worker/deferred.py): an app that imports ssl still gets the whole module, and
    asyncio's TLS works, against a real TLS server on loopback."""
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_context.load_cert_chain(certs.cert_file, certs.key_file)
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(TIMEOUT)
    received: list[bytes] = []

    def serve_one() -> None:
        with (
            listener,
            listener.accept()[0] as raw,
            server_context.wrap_socket(raw, server_side=True) as tls,
        ):
            tls.settimeout(TIMEOUT)
            received.append(tls.recv(64))
            tls.sendall(b"pong\n")

    thread = threading.Thread(target=serve_one, daemon=True)
    thread.start()
    server = start_server(
        "tests.apps.outbound_tls:app", "--workers", "1", "--worker-kind", worker_kind
    )
    port = listener.getsockname()[1]
    response = httpx.get(
        server.url + "/", params={"port": port, "ca": certs.ca_file}, timeout=TIMEOUT
    )
    thread.join(TIMEOUT)
    assert response.status_code == 200
    assert response.text.startswith("pong\n(scope: 'Scope', receive: ")
    assert received == [b"ping\n"]
