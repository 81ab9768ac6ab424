"""Throw-away TLS certificates for Redis and Sentinel test processes (made with openssl)."""

from __future__ import annotations

import shutil
import ssl
import subprocess
from dataclasses import dataclass
from pathlib import Path

from tests.support.processes import (
    ProcessStartError,
)

OPENSSL = shutil.which("openssl") or "/usr/bin/openssl"


@dataclass(frozen=True)
class TLSFiles:
    """A throw-away CA and one certificate it signed for 127.0.0.1, in PEM files.

    Every server and sentinel of a test uses the one certificate (as its server and
    its client certificate: replicas and sentinels connect out over TLS too); clients
    trust `ca` only.
    """

    ca: Path
    cert: Path
    key: Path

    @classmethod
    def make(cls, directory: Path) -> TLSFiles:
        """Issue the CA and the certificate into `directory` with `openssl` (EC P-256)."""
        files = cls(directory / "ca.crt", directory / "server.crt", directory / "server.key")
        ca_key, csr = directory / "ca.key", directory / "server.csr"
        extensions = directory / "server.ext"
        extensions.write_text(
            "basicConstraints=CA:FALSE\n"
            "subjectAltName=IP:127.0.0.1,DNS:localhost\n"
            "keyUsage=digitalSignature,keyEncipherment\n"
            "extendedKeyUsage=serverAuth,clientAuth\n"
            "subjectKeyIdentifier=hash\n"
            "authorityKeyIdentifier=keyid\n"
        )
        new_key = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
        steps = [
            [OPENSSL, "req", "-x509", *new_key, "-keyout", str(ca_key), "-out", str(files.ca),
             "-days", "2", "-subj", "/CN=roomcast-test-ca"],
            [OPENSSL, "req", *new_key, "-keyout", str(files.key), "-out", str(csr),
             "-subj", "/CN=127.0.0.1"],
            [OPENSSL, "x509", "-req", "-in", str(csr), "-CA", str(files.ca), "-CAkey",
             str(ca_key), "-CAcreateserial", "-out", str(files.cert), "-days", "2",
             "-extfile", str(extensions)],
        ]  # fmt: skip
        for argv in steps:
            done = subprocess.run(argv, capture_output=True, timeout=30, check=False)
            if done.returncode != 0:
                raise ProcessStartError(f"{' '.join(argv[:3])} failed: {done.stderr.decode()}")
        return files

    def client_context(self) -> ssl.SSLContext:
        """What a client that trusts only this CA uses (hostname 127.0.0.1 is checked)."""
        return ssl.create_default_context(cafile=str(self.ca))

    def server_config(self) -> list[tuple[str, str]]:
        """The TLS directives of a server or sentinel, as (name, value) pairs."""
        return [
            ("tls-cert-file", str(self.cert)),
            ("tls-key-file", str(self.key)),
            ("tls-ca-cert-file", str(self.ca)),
            ("tls-auth-clients", "no"),
            ("tls-replication", "yes"),  # to the master, and a sentinel to every server
        ]
