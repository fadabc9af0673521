"""The authentication order on request scopes carrying real certificates (no server needed)."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from adapter.auth.authentication import ANONYMOUS, AuthConfig, Authenticator, RequestHeaderConfig, UserInfo
from adapter.certs import KeyPair, issue, new_ca
from adapter.kube.wire import ApiError

CLIENT_CA = new_ca("client-ca")
PROXY_CA = new_ca("proxy-ca")


def scope(cert: KeyPair | None, headers: Sequence[tuple[str, str]] = ()) -> dict[str, object]:
    chain = [cert.cert_pem.decode()] if cert else []
    return {"headers": [(k.lower().encode(), v.encode()) for k, v in headers],
            "extensions": {"tls": {"client_cert_chain": chain}}}


def authenticator(allowed: tuple[str, ...] = ("front-proxy-client",)) -> Authenticator:
    return Authenticator(AuthConfig(CLIENT_CA.cert_pem, RequestHeaderConfig(PROXY_CA.cert_pem, allowed)))


async def test_client_certificate_user_and_groups() -> None:
    cert = issue(CLIENT_CA, "alice", organizations=["devs", "ops"], client=True)
    user = await authenticator().authenticate(scope(cert))
    assert user == UserInfo("alice", groups=("devs", "ops", "system:authenticated"))


async def test_front_proxy_headers() -> None:
    proxy = issue(PROXY_CA, "front-proxy-client", client=True)
    user = await authenticator().authenticate(scope(proxy, [
        ("X-Remote-User", "bob"), ("X-Remote-Uid", "42"), ("X-Remote-Group", "a,b"), ("X-Remote-Group", "c"),
        ("X-Remote-Extra-Scopes", "x"), ("X-Remote-Extra-Acme.com%2Fproject", "p1"),
    ]))
    assert user.name == "bob" and user.uid == "42"
    assert user.groups == ("a,b", "c", "system:authenticated")  # one group per header line, never split
    assert dict(user.extra) == {"scopes": ("x",), "acme.com/project": ("p1",)}


async def test_empty_allowed_names_accept_any_proxy_cn() -> None:
    proxy = issue(PROXY_CA, "whatever", client=True)
    user = await authenticator(()).authenticate(scope(proxy, [("X-Remote-User", "carol")]))
    assert user.name == "carol"


async def test_headers_without_proxy_certificate_are_ignored() -> None:
    cert = issue(CLIENT_CA, "alice", client=True)
    user = await authenticator().authenticate(scope(cert, [("X-Remote-User", "admin")]))
    assert user.name == "alice"
    assert await authenticator().authenticate(scope(None, [("X-Remote-User", "admin")])) == ANONYMOUS


@pytest.mark.parametrize("cert", [
    issue(PROXY_CA, "intruder", client=True),  # proxy CA, CN not allowed
    issue(new_ca("other"), "alice", client=True),  # unknown CA
    issue(CLIENT_CA, "alice", server=True),  # no client-auth usage
])
async def test_unusable_certificates_are_401(cert: KeyPair) -> None:
    with pytest.raises(ApiError) as error:
        await authenticator().authenticate(scope(cert, [("X-Remote-User", "admin")]))
    assert error.value.code == 401


async def test_update_replaces_trusted_cas() -> None:
    auth = authenticator()
    cert = issue(CLIENT_CA, "alice", client=True)
    assert (await auth.authenticate(scope(cert))).name == "alice"
    auth.update(AuthConfig(new_ca("rotated").cert_pem, None))
    with pytest.raises(ApiError):
        await auth.authenticate(scope(cert))
