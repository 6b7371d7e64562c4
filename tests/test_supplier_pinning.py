"""A supplier call connects to the address it checked (resolvers/commerce/suppliers.py).

DNS rebinding: a host answers a public address to the check and an internal one to the
connection. These tests stand a resolver in for DNS (the running loop's ``getaddrinfo``, which
httpx's own connection would ask too) that answers the checked address once and an "internal"
address after that, with a server on each: only the checked one may ever be reached, over HTTP
and over HTTPS with the certificate verified against the host's name, not the address.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import socket
import ssl
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from resolvers.commerce import suppliers
from tests.conftest import free_port

HOST = "supplier.rebind.test"  # .test never resolves for real: only the stand-in answers it
CHECKED, INTERNAL, SILENT = "127.0.0.1", "127.0.0.2", "127.0.0.3"


class Recorder:
    def __init__(self) -> None:
        self.hosts: list[str] = []

    async def topup(self, request: Request) -> JSONResponse:
        self.hosts.append(request.headers.get("host", ""))
        return JSONResponse({"status": "ok"})


async def serve(address: str, port: int, recorder: Recorder, **tls: Any) -> uvicorn.Server:
    app = Starlette(routes=[Route("/topup", recorder.topup, methods=["POST"])])
    server = uvicorn.Server(uvicorn.Config(app, host=address, port=port, log_config=None, lifespan="off", **tls))
    server.task = asyncio.create_task(server.serve())  # type: ignore[attr-defined]
    while not server.started:
        await asyncio.sleep(0.02)
    return server


class Resolver:
    """Answers ``HOST`` with the given address lists in turn (the last one ever after) and
    hands every other name to the real resolver."""

    def __init__(self, real: Any, *answers: list[str]) -> None:
        self.real, self.answers, self.lookups = real, list(answers), 0

    async def __call__(self, host: Any, port: Any, *args: Any, **kwargs: Any) -> list[Any]:
        if (host.decode() if isinstance(host, bytes) else host) != HOST:  # anyio asks in IDNA bytes
            return await self.real(host, port, *args, **kwargs)
        answer = self.answers[min(self.lookups, len(self.answers) - 1)]
        self.lookups += 1
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, int(port))) for address in answer]


@pytest.fixture
def public_only(stack, monkeypatch) -> Iterator[None]:  # type: ignore[no-untyped-def]
    """Production's policy, with 127.0.0.1 and 127.0.0.3 standing for public addresses and
    127.0.0.2 for the internal one."""
    from kameng.settings import configure, get_settings

    before = get_settings()
    configure(before.model_copy(update={"supplier_allow_private": False}))
    monkeypatch.setattr(suppliers, "_public", lambda address: str(address) in (CHECKED, SILENT))
    yield
    configure(before)


@pytest.fixture
async def servers() -> AsyncIterator[tuple[int, Recorder, Recorder]]:
    port = free_port()
    checked, internal = Recorder(), Recorder()
    running = [await serve(CHECKED, port, checked), await serve(INTERNAL, port, internal)]
    yield port, checked, internal
    for server in running:
        server.should_exit = True
        await server.task  # type: ignore[attr-defined]


def resolve_with(monkeypatch: pytest.MonkeyPatch, *answers: list[str]) -> Resolver:
    loop = asyncio.get_running_loop()
    resolver = Resolver(loop.getaddrinfo, *answers)
    monkeypatch.setattr(loop, "getaddrinfo", resolver)
    return resolver


async def test_a_call_reaches_the_address_it_checked_and_never_a_second_answer(
        public_only, servers, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    port, checked, internal = servers
    resolver = resolve_with(monkeypatch, [CHECKED], [INTERNAL])
    target = suppliers.Target(f"http://{HOST}:{port}/topup", None, 2.0)

    assert await suppliers.post(target, {"type": "ping"}) == {"status": "ok"}
    assert checked.hosts == [f"{HOST}:{port}"]  # the name travels in Host, the connection went to the address
    assert resolver.lookups == 1  # nobody asked DNS again between the check and the connection

    # The next call checks afresh: now the name answers the internal address, and it is refused.
    with pytest.raises(suppliers.SupplierRefused, match="not a public address"):
        await suppliers.post(target, {"type": "ping"})
    assert internal.hosts == [] and len(checked.hosts) == 1


async def test_a_call_tries_the_next_checked_address_when_one_does_not_connect(
        public_only, servers, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    port, checked, internal = servers
    resolver = resolve_with(monkeypatch, [SILENT, CHECKED], [INTERNAL])
    assert await suppliers.post(suppliers.Target(f"http://{HOST}:{port}/topup", None, 2.0), {"type": "ping"})
    assert checked.hosts == [f"{HOST}:{port}"] and internal.hosts == [] and resolver.lookups == 1

    # A name with a private address among its public ones is refused whole.
    resolver.answers = [[CHECKED, INTERNAL]]
    resolver.lookups = 0
    with pytest.raises(suppliers.SupplierRefused, match="not a public address"):
        await suppliers.post(suppliers.Target(f"http://{HOST}:{port}/topup", None, 2.0), {"type": "ping"})
    assert len(checked.hosts) == 1 and internal.hosts == []


def certificates(directory: Path, name: str) -> tuple[ssl.SSLContext, dict[str, str]]:
    """A CA the client trusts and a server certificate it signed for ``name`` only."""
    now = dt.datetime.now(dt.UTC)

    def issue(subject: str, key: ec.EllipticCurvePrivateKey, issuer: x509.Name, signer: ec.EllipticCurvePrivateKey,
              ca: bool) -> x509.Certificate:
        builder = (x509.CertificateBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
                   .issuer_name(issuer).public_key(key.public_key()).serial_number(x509.random_serial_number())
                   .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(hours=1))
                   .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
        if not ca:
            builder = builder.add_extension(x509.SubjectAlternativeName([x509.DNSName(subject)]), critical=False)
        return builder.sign(signer, hashes.SHA256())

    ca_key, leaf_key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca = issue("Kameng test CA", ca_key, x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Kameng test CA")]),
               ca_key, True)
    leaf = issue(name, leaf_key, ca.subject, ca_key, False)
    (directory / "leaf.pem").write_bytes(leaf.public_bytes(serialization.Encoding.PEM))
    (directory / "leaf.key").write_bytes(leaf_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    trust = ssl.create_default_context(cadata=ca.public_bytes(serialization.Encoding.PEM).decode())
    return trust, {"ssl_certfile": str(directory / "leaf.pem"), "ssl_keyfile": str(directory / "leaf.key")}


@pytest.mark.parametrize("certified", [HOST, "someone-else.test"])
async def test_https_to_the_checked_address_verifies_the_certificate_against_the_name(
        public_only, monkeypatch, tmp_path, certified) -> None:  # type: ignore[no-untyped-def]
    trust, tls = certificates(tmp_path, certified)
    monkeypatch.setattr(suppliers, "VERIFY", trust)
    port, recorder = free_port(), Recorder()
    server = await serve(CHECKED, port, recorder, **tls)
    try:
        resolver = resolve_with(monkeypatch, [CHECKED], [INTERNAL])
        target = suppliers.Target(f"https://{HOST}:{port}/topup", None, 2.0)
        if certified == HOST:
            assert await suppliers.post(target, {"type": "ping"}) == {"status": "ok"}
            assert recorder.hosts == [f"{HOST}:{port}"]
        else:  # the address answered, but with a certificate for another name: nothing is sent
            with pytest.raises(suppliers.SupplierUnavailable, match="CERTIFICATE_VERIFY_FAILED|certificate"):
                await suppliers.post(target, {"type": "ping"})
            assert recorder.hosts == []
        assert resolver.lookups == 1
    finally:
        server.should_exit = True
        await server.task  # type: ignore[attr-defined]

