"""API authentication, lock-out, user administration, health and OpenAPI."""

from sqlalchemy import func, select

from parcours.core.models import User

from factories import PASSWORD, api_headers, create_user


def test_token_then_me(session, client):
    rep = create_user(session, "rep")
    h = api_headers(client, rep)
    me = client.get("/api/v1/me", headers=h).json()
    assert me["email"] == rep.email and me["role"] == "rep"
    assert "password_hash" not in me


def test_wrong_password_is_401_with_field(session, client):
    rep = create_user(session, "rep")
    resp = client.post("/api/v1/auth/token", json={"email": rep.email, "password": "nope"})
    assert resp.status_code == 401
    assert resp.json()["errors"][0]["field"] == "password"


def test_lockout_after_repeated_failures_even_with_right_password(session, client):
    rep = create_user(session, "rep")
    for _ in range(5):
        assert (
            client.post(
                "/api/v1/auth/token", json={"email": rep.email, "password": "bad"}
            ).status_code
            == 401
        )
    resp = client.post("/api/v1/auth/token", json={"email": rep.email, "password": PASSWORD})
    assert resp.status_code == 429
    assert "locked" in resp.json()["detail"]
    admin = create_user(session, "admin")
    h = api_headers(client, admin)
    assert (
        client.patch(f"/api/v1/users/{rep.id}", json={"unlock": True}, headers=h).status_code == 200
    )
    assert (
        client.post(
            "/api/v1/auth/token", json={"email": rep.email, "password": PASSWORD}
        ).status_code
        == 200
    )


def test_admin_creates_users_and_bad_input_writes_nothing(session, client):
    admin = create_user(session, "admin")
    h = api_headers(client, admin)
    count = session.scalar(select(func.count(User.id)))
    bad = [
        ({"email": "not-an-email"}, "email"),
        ({"role": "overlord"}, "role"),
        ({"password": "short"}, "password"),
        ({"language": "de"}, "language"),
    ]
    good = {
        "email": "new.rep@example.org",
        "full_name": "New Rep",
        "role": "rep",
        "password": "long-enough-password",
    }
    for over, field in bad:
        resp = client.post("/api/v1/users", json={**good, **over}, headers=h)
        assert resp.status_code == 422, resp.text
        assert resp.json()["errors"][0]["field"] == field
    assert session.scalar(select(func.count(User.id))) == count
    assert client.post("/api/v1/users", json=good, headers=h).status_code == 201
    resp = client.post("/api/v1/users", json={**good, "email": "NEW.rep@example.org"}, headers=h)
    assert resp.status_code == 409 and resp.json()["errors"][0]["field"] == "email"


def test_healthz_and_openapi(client):
    assert client.get("/healthz").json() == {"status": "ok"}
    spec = client.get("/api/v1/openapi.json").json()
    for path in (
        "/api/v1/auth/token",
        "/api/v1/accounts",
        "/api/v1/accounts/{account_id}/timeline",
        "/api/v1/activities/{activity_id}/submit",
        "/api/v1/tasks",
        "/api/v1/users",
    ):
        assert path in spec["paths"]


def test_unknown_api_route_is_problem_json(client):
    resp = client.get("/api/v1/nothing-here")
    assert resp.status_code == 404
    assert resp.headers["content-type"].startswith("application/problem+json")
