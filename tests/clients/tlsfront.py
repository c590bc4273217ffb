"""A TLS front for clients that insist on https:// and real-looking hosts (kbagent).

kbagent refuses a plain-http stack URL and uploads to `https://<bucket>.s3.<region>.amazonaws.com`
itself, so neither the emulator's http API nor its S3 port is reachable by configuration alone.
This is an HTTPS proxy (the client's own `HTTPS_PROXY` setting) that answers CONNECT for the hosts
it knows, terminates TLS with a certificate signed by a throw-away test CA (trusted through the
client's own `SSL_CERT_FILE`), and pipes the plain bytes to the emulator: `*.keboola.test` -> the
API (`.test` is a reserved TLD, so nothing can ever leave the machine), `*.amazonaws.com` -> the
emulator's S3. Unknown hosts get 502. No client code is patched.
"""

from __future__ import annotations

import contextlib
import datetime
import ipaddress
import selectors
import socket
import ssl
import threading
from collections.abc import Callable
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

Backend = tuple[str, int]
HOSTS = ["connection.keboola.test", "*.keboola.test", "*.s3.us-east-1.amazonaws.com", "*.s3.amazonaws.com"]


def _name(common: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common)])


def make_certificates(folder: Path, hosts: list[str]) -> tuple[Path, Path, Path]:
    """A test CA and one server certificate for `hosts` (+ 127.0.0.1); returns (ca, cert, key)."""
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (
        x509.CertificateBuilder()
        .subject_name(_name("keboola-sync test CA"))
        .issuer_name(_name("keboola-sync test CA"))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=2))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    names: list[x509.GeneralName] = [x509.DNSName(h) for h in hosts]
    names.append(x509.IPAddress(ipaddress.ip_address("127.0.0.1")))
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(hosts[0]))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    ca_path, cert_path, key_path = folder / "ca.pem", folder / "server.pem", folder / "server.key"
    ca_path.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return ca_path, cert_path, key_path


class TlsFront:
    """`HTTPS_PROXY=front.proxy_url`, `SSL_CERT_FILE=front.ca_file`; `route(host)` picks the backend."""

    def __init__(self, folder: Path, route: Callable[[str], Backend | None]) -> None:
        self.ca_file, cert, key = make_certificates(folder, HOSTS)
        self._tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self._tls.load_cert_chain(cert, key)
        self._route = route
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.proxy_url = f"http://127.0.0.1:{self._listener.getsockname()[1]}"
        self.tunnels: list[str] = []  # hosts that were tunnelled, for the tests' own checks
        self._closed = threading.Event()
        threading.Thread(target=self._accept, name="tls-front", daemon=True).start()

    def close(self) -> None:
        self._closed.set()
        with contextlib.suppress(OSError):
            self._listener.close()

    def _accept(self) -> None:
        while not self._closed.is_set():
            try:
                conn, _ = self._listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), name="tls-front-conn", daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        with contextlib.suppress(OSError, ssl.SSLError), conn:
            conn.settimeout(30)
            head = b""
            while b"\r\n\r\n" not in head and len(head) < 65536:
                chunk = conn.recv(4096)
                if not chunk:
                    return
                head += chunk
            method, target = [*head.split(b"\r\n", 1)[0].decode("latin-1").split(" "), "", ""][:2]
            host = target.rsplit(":", 1)[0]
            backend = self._route(host) if method == "CONNECT" else None
            if backend is None:
                conn.sendall(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                return
            conn.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
            self.tunnels.append(host)
            with self._tls.wrap_socket(conn, server_side=True) as tls, socket.create_connection(backend) as plain:
                _pump(tls, plain)


def _pump(tls: ssl.SSLSocket, plain: socket.socket) -> None:
    """Copies bytes both ways on one thread (an SSL object must not be read and written from two)."""
    tls.settimeout(60)
    plain.settimeout(60)
    with selectors.DefaultSelector() as sel:
        sel.register(tls, selectors.EVENT_READ)
        sel.register(plain, selectors.EVENT_READ)
        while True:
            ready = sel.select(timeout=120)
            if not ready:
                return
            for key, _ in ready:
                if key.fileobj is tls:
                    data = tls.recv(65536)
                    while data and tls.pending():
                        data += tls.recv(tls.pending())
                    target: socket.socket = plain
                else:
                    data = plain.recv(65536)
                    target = tls
                if not data:
                    return
                target.sendall(data)
