"""A throwaway PKI for the TLS tests: a CA, a server certificate for 127.0.0.1/localhost and
client certificates, as PEM text."""
from __future__ import annotations

import datetime
import ipaddress
from typing import Mapping, Sequence

import pytest

DEFAULT_CLIENT = "mlmd-log test client"


def make_pki(clients: Mapping[str, Sequence[str]] = {DEFAULT_CLIENT: ()}) -> dict[str, str]:
    """``ca``, ``server_key``, ``server_cert``; for each client common name, ``<name> key``
    and ``<name> cert`` (with the given DNS subject alternative names); the first client's
    also as ``client_key`` and ``client_cert``."""
    x509 = pytest.importorskip("cryptography.x509")
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    def key_pem(key) -> str:
        return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                 serialization.NoEncryption()).decode()

    def pem(certificate) -> str:
        return certificate.public_bytes(serialization.Encoding.PEM).decode()

    now = datetime.datetime.now(datetime.timezone.utc)

    def cert(subject: str, key, issuer_name, issuer_key, ca: bool, extensions=()) -> x509.Certificate:
        builder = (x509.CertificateBuilder()
                   .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
                   .issuer_name(issuer_name or x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
                   .public_key(key.public_key()).serial_number(x509.random_serial_number())
                   .not_valid_before(now - datetime.timedelta(minutes=5))
                   .not_valid_after(now + datetime.timedelta(days=1))
                   .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
        for ext in extensions:
            builder = builder.add_extension(ext, critical=False)
        return builder.sign(issuer_key, hashes.SHA256())

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = cert("mlmd-log test CA", ca_key, None, ca_key, True,
              [x509.KeyUsage(False, False, False, False, False, True, True, False, False)])
    server_key = ec.generate_private_key(ec.SECP256R1())
    server = cert("localhost", server_key, ca.subject, ca_key, False, [
        x509.SubjectAlternativeName([x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
        x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH])])
    out = {"ca": pem(ca), "server_key": key_pem(server_key), "server_cert": pem(server)}
    for name, dns_names in clients.items():
        key = ec.generate_private_key(ec.SECP256R1())
        extensions = [x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH])]
        if dns_names:
            extensions.append(x509.SubjectAlternativeName([x509.DNSName(d) for d in dns_names]))
        out[f"{name} key"], out[f"{name} cert"] = key_pem(key), pem(cert(name, key, ca.subject, ca_key, False,
                                                                         extensions))
        out.setdefault("client_key", out[f"{name} key"])
        out.setdefault("client_cert", out[f"{name} cert"])
    return out
