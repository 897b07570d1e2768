"""A small RFC 3161 time-stamping authority over loopback, for tests (no external service).

``LocalTsa`` makes a CA and a TSA certificate (EKU timeStamping, critical) with
``cryptography``, answers ``TimeStampReq`` POSTs with a token signed (ECDSA P-256, SHA-256)
over CMS signed attributes, and can be told to misbehave (refuse, answer another nonce).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from asn1crypto import algos, cms, core, tsp
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

POLICY = "1.3.6.1.4.1.99999.1.1"


def _name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Monitor Test TSA"),
        ]
    )


class LocalTsa:
    def __init__(self) -> None:
        now = dt.datetime.now(dt.UTC)
        self.ca_key = ec.generate_private_key(ec.SECP256R1())
        self.ca_cert = (
            x509.CertificateBuilder()
            .subject_name(_name("Test TSA Root"))
            .issuer_name(_name("Test TSA Root"))
            .public_key(self.ca_key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(days=1))
            .not_valid_after(now + dt.timedelta(days=30))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(self.ca_key, hashes.SHA256())
        )
        self.key = ec.generate_private_key(ec.SECP256R1())
        self.cert = (
            x509.CertificateBuilder()
            .subject_name(_name("Test TSA"))
            .issuer_name(self.ca_cert.subject)
            .public_key(self.key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(days=1))
            .not_valid_after(now + dt.timedelta(days=30))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.TIME_STAMPING]), critical=True)
            .sign(self.ca_key, hashes.SHA256())
        )
        self.serial = 0
        self.requests = 0
        self.mode = "ok"  # "ok" | "refuse" | "wrong_nonce"
        self.url = ""

    @property
    def ca_pem(self) -> bytes:
        return self.ca_cert.public_bytes(serialization.Encoding.PEM)

    def respond(self, body: bytes) -> bytes:
        self.requests += 1
        req = tsp.TimeStampReq.load(body)
        if self.mode == "refuse":
            # asn1crypto's TimeStampResp insists on a token; a rejection has none (RFC 3161 2.4.2)
            status = tsp.PKIStatusInfo({"status": "rejection", "status_string": ["policy says no"]}).dump()
            return core.Sequence.load(b"\x30" + _der_length(len(status)) + status).dump()
        self.serial += 1
        nonce = req["nonce"].native
        if self.mode == "wrong_nonce" and nonce is not None:
            nonce += 1
        tst = tsp.TSTInfo(
            {
                "version": "v1",
                "policy": POLICY,
                "message_imprint": req["message_imprint"],
                "serial_number": self.serial,
                "gen_time": dt.datetime.now(dt.UTC).replace(microsecond=0),
                "nonce": nonce,
            }
        )
        tst_der = tst.dump()
        cert = asn1_x509.Certificate.load(self.cert.public_bytes(serialization.Encoding.DER))
        signed_attrs = cms.CMSAttributes(
            [
                cms.CMSAttribute({"type": "content_type", "values": ["tst_info"]}),
                cms.CMSAttribute({"type": "message_digest", "values": [hashlib.sha256(tst_der).digest()]}),
            ]
        )
        signature = self.key.sign(b"\x31" + signed_attrs.dump()[1:], ec.ECDSA(hashes.SHA256()))
        signer = cms.SignerInfo(
            {
                "version": "v1",
                "sid": cms.SignerIdentifier(
                    {
                        "issuer_and_serial_number": {
                            "issuer": cert.issuer,
                            "serial_number": cert.serial_number,
                        }
                    }
                ),
                "digest_algorithm": algos.DigestAlgorithm({"algorithm": "sha256"}),
                "signed_attrs": signed_attrs,
                "signature_algorithm": algos.SignedDigestAlgorithm({"algorithm": "sha256_ecdsa"}),
                "signature": signature,
            }
        )
        signed = cms.SignedData(
            {
                "version": "v3",
                "digest_algorithms": [algos.DigestAlgorithm({"algorithm": "sha256"})],
                "encap_content_info": {
                    "content_type": "tst_info",
                    "content": core.ParsableOctetString(tst_der),
                },
                "certificates": [cert],
                "signer_infos": [signer],
            }
        )
        token = cms.ContentInfo({"content_type": "signed_data", "content": signed})
        return tsp.TimeStampResp({"status": {"status": "granted"}, "time_stamp_token": token}).dump()


def _der_length(n: int) -> bytes:
    if n < 0x80:
        return bytes([n])
    raw = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(raw)]) + raw


@contextmanager
def local_tsa() -> Iterator[LocalTsa]:
    """A running TSA on ``http://127.0.0.1:<port>/tsr``."""
    tsa = LocalTsa()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            body = self.rfile.read(length)
            try:
                answer = tsa.respond(body)
            except Exception:
                self.send_response(400)
                self.end_headers()
                return
            self.send_response(200)
            self.send_header("Content-Type", "application/timestamp-reply")
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    tsa.url = f"http://127.0.0.1:{server.server_address[1]}/tsr"
    try:
        yield tsa
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
