"""Identity-only storage, for real: Azurite over HTTPS with ``--oauth basic`` checks each bearer
token's issuer, audience and lifetime (not its signature), as the deployer's clients reach it with
the ``AzureWebJobsStorage__*`` settings the Functions host reads, and no shared key."""

from __future__ import annotations

import base64
import datetime as dt
import ipaddress
import json
import os
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from azure.core.credentials import AccessToken

from deployer import devservices
from deployer.adapters.storage import storage_from
from deployer.config import Settings
from deployer.errors import UpstreamError

pytestmark = pytest.mark.azurite
TENANT = "72f988bf-86f1-41af-91ab-2d7cd011db47"


def _self_signed(where: Path) -> tuple[Path, Path]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.x509.oid import NameOID

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                                                        x509.DNSName("localhost")]), critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = where / "cert.pem", where / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


class EntraLikeCredential:
    """Mints the unsigned JWT an Entra ID token looks like to Azurite (issuer, audience,
    lifetime); records the scopes it was asked for."""

    def __init__(self, audience: str = "https://storage.azure.com") -> None:
        self.audience = audience
        self.scopes: list[tuple[str, ...]] = []

    def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
        self.scopes.append(scopes)
        now = int(time.time())

        def part(data: dict[str, Any]) -> str:
            return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()

        claims = {"aud": self.audience, "iss": f"https://sts.windows.net/{TENANT}/", "iat": now - 60,
                  "nbf": now - 60, "exp": now + 3600, "oid": str(uuid.uuid4()), "tid": TENANT}
        return AccessToken(f"{part({'alg': 'none', 'typ': 'JWT'})}.{part(claims)}.", now + 3600)


@pytest.fixture(scope="module")
def https_azurite(tmp_path_factory: pytest.TempPathFactory) -> Iterator[devservices.AzuriteEndpoints]:
    base = tmp_path_factory.mktemp("azurite-https")
    cert, key = _self_signed(base)
    server = devservices.AzuriteServer(base / "data", tls=(cert, key))
    before = os.environ.get("REQUESTS_CA_BUNDLE")
    os.environ["REQUESTS_CA_BUNDLE"] = str(cert)  # how a machine trusts a private CA
    try:
        yield server.start()
    finally:
        server.stop()
        if before is None:
            os.environ.pop("REQUESTS_CA_BUNDLE", None)
        else:
            os.environ["REQUESTS_CA_BUNDLE"] = before


def _settings(ends: devservices.AzuriteEndpoints, **extra: str) -> Settings:
    return Settings.from_env({
        "AzureWebJobsStorage__blobServiceUri": ends.blob_url,
        "AzureWebJobsStorage__queueServiceUri": ends.queue_url,
        "AzureWebJobsStorage__credential": "managedidentity",
        "PREFECT_API_URL": "http://127.0.0.1:4200/api", "DEPLOYER_CONFIG_DIGEST_KEY": "k" * 32,
        "DEPLOYER_STATE_CONTAINER": f"state-{uuid.uuid4().hex[:8]}", **extra})


def test_state_bundles_and_the_queue_work_with_a_token_and_no_key(https_azurite: devservices.AzuriteEndpoints) -> None:
    credential = EntraLikeCredential()
    settings = _settings(https_azurite)
    assert settings.storage_identity and not settings.storage_connection.reveal()
    storage = storage_from(settings, credential=credential)
    etag = storage.documents.create("modules/demo.json", b'{"x": 1}')
    got = storage.documents.get("modules/demo.json")
    assert got is not None and got.body == b'{"x": 1}' and got.etag == etag
    lease = storage.documents.acquire_lease("modules/demo.json", 15)  # leases: the data owner role
    assert lease is not None
    storage.documents.release_lease("modules/demo.json", lease)
    storage.queue.send(b"hello")
    [message] = storage.queue.receive(visibility_timeout=5, max_messages=1)
    assert message.body == b"hello"
    assert credential.scopes and all(s == ("https://storage.azure.com/.default",) for s in credential.scopes)


def test_a_token_for_another_audience_is_refused_and_the_error_says_which_credential(
        https_azurite: devservices.AzuriteEndpoints) -> None:
    storage = storage_from(_settings(https_azurite), credential=EntraLikeCredential("https://vault.azure.net"))
    with pytest.raises(UpstreamError) as info:
        storage.documents.get("modules/demo.json")
    assert info.value.message.endswith("rejected the credentials")
    assert "managed identity role" in (info.value.hint or "")


def test_without_a_credential_the_managed_identity_of_the_app_is_used(
        https_azurite: devservices.AzuriteEndpoints, monkeypatch: pytest.MonkeyPatch) -> None:
    """DefaultAzureCredential as the function app has it: the platform's managed identity endpoint
    (IDENTITY_ENDPOINT/IDENTITY_HEADER, here a loopback one), asked for the user-assigned identity
    that AzureWebJobsStorage__clientId names."""
    import http.server
    import threading
    import urllib.parse

    asked: list[dict[str, Any]] = []
    mint = EntraLikeCredential()

    class Endpoint(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            query = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(self.path).query))
            asked.append({"query": query, "header": self.headers.get("X-IDENTITY-HEADER")})
            token = mint.get_token("https://storage.azure.com/.default")
            body = json.dumps({"access_token": token.token, "expires_on": str(token.expires_on),
                               "resource": query.get("resource"), "token_type": "Bearer"}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Endpoint)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    for name in ("AZURE_CLIENT_ID", "AZURE_CLIENT_SECRET", "AZURE_TENANT_ID", "AZURE_FEDERATED_TOKEN_FILE",
                 "MSI_ENDPOINT", "MSI_SECRET", "IDENTITY_SERVER_THUMBPRINT", "IMDS_ENDPOINT"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("IDENTITY_ENDPOINT", f"http://127.0.0.1:{server.server_port}/msi/token")
    monkeypatch.setenv("IDENTITY_HEADER", "platform-secret-header")
    client_id = "11111111-2222-3333-4444-555555555555"
    try:
        storage = storage_from(_settings(https_azurite, AzureWebJobsStorage__clientId=client_id))
        storage.documents.create("modules/mi.json", b"{}")
        assert storage.documents.get("modules/mi.json") is not None
    finally:
        server.shutdown()
    assert asked and asked[0]["header"] == "platform-secret-header"
    assert asked[0]["query"]["client_id"] == client_id
    assert asked[0]["query"]["resource"] == "https://storage.azure.com"
