"""Accounts over HTTP: register, login, viewer, tokens, throttling, bad input."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

import jwt
import pytest

from models.accounts.users import AuthSession, User
from tests.conftest import LOGIN, REGISTER, Client

VIEWER = "{ viewer { id email nickname role tier } }"


async def test_register_login_viewer(client: Client) -> None:
    registered = await client.register(nickname="Ann")
    assert registered["user"]["email"] == registered["email"]  # the new user sees their own email
    client.token = None
    assert (await client.gql(VIEWER))["viewer"] is None
    signed_in = await client.login(registered["email"], registered["password"])
    assert signed_in["errors"] == []
    viewer = (await client.gql(VIEWER))["viewer"]
    assert viewer == {
        "id": registered["user"]["id"],
        "email": registered["email"],
        "nickname": "Ann",
        "role": "BUYER",
        "tier": "NORMAL",
    }


async def test_email_is_normalised_and_unique(client: Client, make_client) -> None:  # type: ignore[no-untyped-def]
    local = uuid.uuid4().hex[:10]
    await client.register(email=f"{local}@Example.com")
    other = make_client()
    data = await other.gql(REGISTER, {"input": {"email": f"{local}@example.com", "password": "x" * 12, "nickname": "Bob"}})
    assert [e["code"] for e in data["register"]["errors"]] == ["EMAIL_TAKEN"]
    assert data["register"]["accessToken"] is None


async def test_concurrent_registrations_of_one_email_create_one_account(make_client) -> None:  # type: ignore[no-untyped-def]
    email = f"{uuid.uuid4().hex[:10]}@example.com"
    variables = {"input": {"email": email, "password": "correct horse battery", "nickname": "Racer"}}
    results = await asyncio.gather(*(make_client().gql(REGISTER, variables) for _ in range(10)))
    codes = [[e["code"] for e in r["register"]["errors"]] for r in results]
    assert codes.count([]) == 1
    assert all(c in ([], ["EMAIL_TAKEN"]) for c in codes)
    assert await User.filter(email=email).count() == 1


BAD_REGISTRATIONS = [
    ({"email": "not-an-email", "password": "correct horse", "nickname": "Ann"}, "email"),
    ({"email": "", "password": "correct horse", "nickname": "Ann"}, "email"),
    ({"email": "a@b", "password": "correct horse", "nickname": "Ann"}, "email"),
    ({"email": "{u}@example.com", "password": "short", "nickname": "Ann"}, "password"),
    ({"email": "{u}@example.com", "password": "x" * 129, "nickname": "Ann"}, "password"),
    ({"email": "{u}@example.com", "password": "{u}@example.com", "nickname": "Ann"}, "password"),
    ({"email": "{u}@example.com", "password": "correct horse", "nickname": "A"}, "nickname"),
    ({"email": "{u}@example.com", "password": "correct horse", "nickname": "   "}, "nickname"),
    ({"email": "{u}@example.com", "password": "correct horse", "nickname": "x" * 41}, "nickname"),
    ({"email": "{u}@example.com", "password": "correct horse", "nickname": "bad\u0007name"}, "nickname"),
]


async def test_bad_registrations_return_user_errors_and_change_nothing(client: Client) -> None:
    users_before = await User.all().count()
    for fields, field in BAD_REGISTRATIONS:
        u = uuid.uuid4().hex[:10]
        variables = {"input": {k: v.replace("{u}", u) for k, v in fields.items()}}
        payload = (await client.gql(REGISTER, variables))["register"]
        assert [(e["code"], e["field"]) for e in payload["errors"]] == [("INVALID_INPUT", field)], fields
        assert payload["accessToken"] is None and payload["user"] is None
    assert await User.all().count() == users_before


async def test_nul_in_a_registration_is_refused_before_execution(client: Client) -> None:
    users_before = await User.all().count()
    variables = {"input": {"email": f"{uuid.uuid4().hex[:10]}@example.com", "password": "correct horse",
                           "nickname": "bad\u0000name"}}
    body = (await client.post(REGISTER, variables)).json()
    assert body["data"] is None
    assert [(e["extensions"]["code"], e["extensions"]["field"]) for e in body["errors"]] == [
        ("INVALID_INPUT", "input.nickname")
    ]
    assert await User.all().count() == users_before


async def test_wrong_password_is_invalid_credentials_then_rate_limited(client: Client, make_client) -> None:  # type: ignore[no-untyped-def]
    account = await client.register()
    attacker = make_client()
    codes = []
    for _ in range(7):
        payload = (await attacker.gql(LOGIN, {"input": {"email": account["email"], "password": "wrong password"}}))["login"]
        codes.append(payload["errors"][0]["code"])
    assert codes[:5] == ["INVALID_CREDENTIALS"] * 5
    assert codes[5:] == ["RATE_LIMITED"] * 2
    # From the attacker's address even the right password is refused while it is throttled...
    payload = await attacker.login(account["email"], account["password"])
    assert payload["errors"][0]["code"] == "RATE_LIMITED"
    # ... but the owner, at another address, is not locked out (issue 10).
    payload = await make_client().login(account["email"], account["password"])
    assert payload["errors"] == [] and payload["accessToken"]


async def test_login_is_throttled_per_address(stack, make_client) -> None:  # type: ignore[no-untyped-def]
    from kameng import runtime

    limiter = runtime.limiter()
    ip = "198.51.100.77"
    # The test settings allow 1000/minute per address: use it up directly, then try once more.
    for _ in range(1000):
        await limiter.hit(stack.settings.login_limit_per_ip, "login:ip", ip)
    attacker = make_client(ip)
    payload = (await attacker.gql(LOGIN, {"input": {"email": "nobody@example.com", "password": "whatever1"}}))["login"]
    assert payload["errors"][0]["code"] == "RATE_LIMITED"


async def test_unknown_email_and_wrong_password_look_the_same(client: Client) -> None:
    account = await client.register()
    wrong = (await client.gql(LOGIN, {"input": {"email": account["email"], "password": "nope-nope"}}))["login"]
    unknown = (await client.gql(LOGIN, {"input": {"email": "ghost@example.com", "password": "nope-nope"}}))["login"]
    assert wrong["errors"] == unknown["errors"]


def _unauthenticated(response) -> None:  # type: ignore[no-untyped-def]
    assert response.status_code == 401, response.text
    assert response.json()["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"


async def test_forged_token_is_refused(client: Client) -> None:
    await client.register()
    claims = jwt.decode(client.token, options={"verify_signature": False})
    forged = jwt.encode(claims, "not-the-secret-" * 4, algorithm="HS256")
    _unauthenticated(await client.post(VIEWER, token=forged))
    unsigned = jwt.encode(claims, None, algorithm="none")  # type: ignore[arg-type]
    _unauthenticated(await client.post(VIEWER, token=unsigned))
    _unauthenticated(await client.post(VIEWER, token="garbage"))


async def test_expired_token_is_refused(stack, client: Client) -> None:  # type: ignore[no-untyped-def]
    await client.register()
    claims = jwt.decode(client.token, options={"verify_signature": False})
    past = datetime.now(UTC) - timedelta(hours=1)
    claims.update(iat=past - timedelta(minutes=15), exp=past)
    expired = jwt.encode(claims, stack.settings.signing_secret(), algorithm="HS256")
    _unauthenticated(await client.post(VIEWER, token=expired))


LOGOUT = "mutation($input: LogoutInput!) { logout(input: $input) { errors { code } sessionsEnded } }"
REFRESH = """mutation($input: RefreshTokenInput!) { refreshToken(input: $input) {
  errors { code field } accessToken refreshToken user { id } } }"""


async def test_logout_revokes_the_access_token(client: Client) -> None:
    await client.register()
    token = client.token
    payload = (await client.gql(LOGOUT, {"input": {}}))["logout"]
    assert payload == {"errors": [], "sessionsEnded": 1}
    _unauthenticated(await client.post(VIEWER, token=token))
    refreshed = (await client.gql(REFRESH, {"input": {"refreshToken": client.refresh}}, token=""))["refreshToken"]
    assert refreshed["errors"][0]["code"] == "UNAUTHENTICATED"


async def test_logout_requires_a_session(client: Client) -> None:
    payload = (await client.gql(LOGOUT, {"input": {"everywhere": True}}))["logout"]
    assert payload == {"errors": [{"code": "UNAUTHENTICATED"}], "sessionsEnded": None}


@pytest.fixture
def short_refresh_grace(stack):  # type: ignore[no-untyped-def]
    """The server's refresh grace window shortened to half a second, for this test."""
    from kameng.settings import configure, get_settings

    before = get_settings()
    configure(before.model_copy(update={"refresh_reuse_grace_seconds": 0.5}))
    yield
    configure(before)


async def test_refresh_rotates_and_reuse_revokes_the_session(client: Client, short_refresh_grace: None) -> None:
    await client.register()
    first_refresh = client.refresh
    client.token = None
    rotated = (await client.gql(REFRESH, {"input": {"refreshToken": first_refresh}}))["refreshToken"]
    assert rotated["errors"] == [] and rotated["refreshToken"] != first_refresh
    assert (await client.gql(VIEWER, token=rotated["accessToken"]))["viewer"] is not None
    # Past the grace window, the old refresh token again: it was copied, so the whole session ends.
    await asyncio.sleep(0.7)
    replay = (await client.gql(REFRESH, {"input": {"refreshToken": first_refresh}}))["refreshToken"]
    assert replay["errors"][0]["code"] == "UNAUTHENTICATED"
    _unauthenticated(await client.post(VIEWER, token=rotated["accessToken"]))
    again = (await client.gql(REFRESH, {"input": {"refreshToken": rotated["refreshToken"]}}))["refreshToken"]
    assert again["errors"][0]["code"] == "UNAUTHENTICATED"


async def test_reuse_within_the_grace_window_gets_the_same_pair(client: Client) -> None:
    await client.register()
    first_refresh = client.refresh
    client.token = None
    rotated = (await client.gql(REFRESH, {"input": {"refreshToken": first_refresh}}))["refreshToken"]
    again = (await client.gql(REFRESH, {"input": {"refreshToken": first_refresh}}))["refreshToken"]
    assert again["errors"] == [] and again["refreshToken"] == rotated["refreshToken"]
    # Both access tokens work, and the new refresh token rotates as usual.
    for access in (rotated["accessToken"], again["accessToken"]):
        assert (await client.gql(VIEWER, token=access))["viewer"] is not None
    following = (await client.gql(REFRESH, {"input": {"refreshToken": rotated["refreshToken"]}}))["refreshToken"]
    assert following["errors"] == [] and following["refreshToken"] != rotated["refreshToken"]


async def test_ten_concurrent_refreshes_of_one_token_keep_the_session(client: Client) -> None:
    """Several tabs refreshing at once: all get the same new pair and nobody is signed out."""
    await client.register()
    token = client.refresh
    client.token = None
    results = await asyncio.gather(*(client.gql(REFRESH, {"input": {"refreshToken": token}}) for _ in range(10)))
    payloads = [r["refreshToken"] for r in results]
    assert [p["errors"] for p in payloads] == [[]] * 10
    assert len({p["refreshToken"] for p in payloads}) == 1
    for payload in payloads:
        assert (await client.gql(VIEWER, token=payload["accessToken"]))["viewer"] is not None
    following = (await client.gql(REFRESH, {"input": {"refreshToken": payloads[0]["refreshToken"]}}))["refreshToken"]
    assert following["errors"] == []
    assert (await client.gql(VIEWER, token=following["accessToken"]))["viewer"] is not None


async def test_malformed_refresh_tokens(client: Client) -> None:
    for bad in ["", "x", "not-a-uuid.secret", f"{uuid.uuid4()}.secret"]:
        payload = (await client.gql(REFRESH, {"input": {"refreshToken": bad}}))["refreshToken"]
        assert payload["errors"] == [{"code": "UNAUTHENTICATED", "field": "refreshToken"}]


async def test_logout_everywhere(client: Client) -> None:
    account = await client.register()
    await client.login(account["email"], account["password"])
    user_id = (await User.get(email=account["email"])).id
    payload = (await client.gql(LOGOUT, {"input": {"everywhere": True}}))["logout"]
    assert payload["sessionsEnded"] == 2
    assert await AuthSession.filter(user_id=user_id, revoked_at=None).count() == 0


async def test_the_session_lookup_reads_the_whole_user_and_only_a_live_session(client: Client) -> None:
    """authenticate's one hand-written statement (resolvers/accounts/auth.py) against the ORM:
    the same user, every field, and no row for a session expired, revoked or not the user's."""
    from resolvers.accounts.auth import live_session_user

    await client.register()
    claims = jwt.decode(client.token, options={"verify_signature": False})
    session = await AuthSession.get(id=claims["sid"])
    expected = await User.get(id=session.user_id)
    found = await live_session_user(session.id, session.user_id)
    assert found is not None and not found._partial
    assert {name: getattr(found, name) for name in User._meta.fields_map if name in User._meta.fields_db_projection} == {
        name: getattr(expected, name) for name in User._meta.fields_map if name in User._meta.fields_db_projection}
    assert await live_session_user(session.id, session.user_id + 1) is None
    assert await live_session_user(uuid.uuid4(), session.user_id) is None

    await AuthSession.filter(id=session.id).update(expires_at=datetime.now(UTC) - timedelta(seconds=1))
    assert await live_session_user(session.id, session.user_id) is None
    _unauthenticated(await client.post(VIEWER))  # the access token itself has not expired
    await AuthSession.filter(id=session.id).update(expires_at=datetime.now(UTC) + timedelta(hours=1))
    assert (await client.gql("{ viewer { id } }"))["viewer"] is not None
    await AuthSession.filter(id=session.id).update(revoked_at=datetime.now(UTC))
    assert await live_session_user(session.id, session.user_id) is None
    _unauthenticated(await client.post(VIEWER))
