"""Many writers at once against a real server on SQLite: every form post and API write lands."""

import re
from concurrent.futures import ThreadPoolExecutor

import httpx

from factories import PASSWORD


def _logged_in(base: str, email: str) -> tuple[httpx.Client, str]:
    client = httpx.Client(base_url=base, timeout=30, follow_redirects=False)
    page = client.get("/login")
    token = re.search(r'name="_csrf" value="([^"]+)"', page.text).group(1)
    resp = client.post("/login", data={"email": email, "password": PASSWORD, "_csrf": token})
    assert resp.status_code == 303, resp.text
    home = client.get("/")
    csrf = re.search(r'"X-CSRF-Token": "([^"]+)"', home.text).group(1)
    return client, csrf


def test_concurrent_form_posts_all_succeed(live_server):
    client, csrf = _logged_in(live_server["base"], live_server["rep_email"])

    def post(i: int) -> int:
        lang = "fr" if i % 2 else "en"
        return client.post("/language", data={"language": lang, "_csrf": csrf}).status_code

    with ThreadPoolExecutor(max_workers=12) as pool:
        codes = list(pool.map(post, range(36)))
    client.post("/language", data={"language": "en", "_csrf": csrf})
    client.close()
    assert codes == [303] * 36


def test_concurrent_api_writes_all_land(live_server):
    base = live_server["base"]
    token = httpx.post(
        f"{base}/api/v1/auth/token", json={"email": live_server["rep_email"], "password": PASSWORD}
    ).json()
    headers = {"Authorization": f"Bearer {token['access_token']}"}

    def create(i: int) -> int:
        return httpx.post(
            f"{base}/api/v1/tasks",
            headers=headers,
            timeout=30,
            json={
                "title": f"Concurrent task {i}",
                "due_date": "2030-01-01",
                "account_id": live_server["hcp_id"],
            },
        ).status_code

    with ThreadPoolExecutor(max_workers=12) as pool:
        codes = list(pool.map(create, range(36)))
    assert codes == [201] * 36
    titles = {t["title"] for t in httpx.get(f"{base}/api/v1/tasks", headers=headers).json()}
    assert {f"Concurrent task {i}" for i in range(36)} <= titles
