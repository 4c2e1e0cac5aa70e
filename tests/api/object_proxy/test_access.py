"""Who may do what: Keystone owners, other projects, container ACLs, TempAuth and temporary URLs."""

from __future__ import annotations

import hashlib
import hmac
import time

import httpx

from tests.api.object_proxy.conftest import ProxyHarness, unique


def _setup(proxy: ProxyHarness) -> tuple[str, str]:
    alpha = proxy.users["alpha"]
    name = unique("shared")
    base = f"{proxy.account_url(alpha)}/{name}"
    with proxy.client(alpha) as http:
        assert http.put(base).status_code == 201
        assert http.put(f"{base}/secret", content=b"alpha's data").status_code == 201
    return base, name


def test_no_token_is_401_and_a_bad_token_is_401(proxy: ProxyHarness) -> None:
    base, _ = _setup(proxy)
    with proxy.client() as http:
        assert http.get(f"{base}/secret").status_code == 401
        assert http.get(base).status_code == 401
    with proxy.client(token="not-a-token") as http:
        assert http.get(f"{base}/secret").status_code == 401


def test_another_project_cannot_list_or_read_or_write(proxy: ProxyHarness) -> None:
    base, _ = _setup(proxy)
    alpha, beta = proxy.users["alpha"], proxy.users["beta"]
    with proxy.client(beta) as http:
        assert http.get(proxy.account_url(alpha)).status_code == 403
        assert http.head(proxy.account_url(alpha)).status_code == 403
        assert http.get(base).status_code == 403
        assert http.get(f"{base}/secret").status_code == 403
        assert http.put(f"{base}/new", content=b"x").status_code == 403
        assert http.delete(f"{base}/secret").status_code == 403
        assert http.post(base, headers={"X-Container-Read": ".r:*"}).status_code == 403
        # beta's own account is separate
        assert http.put(f"{proxy.account_url(beta)}/{unique('mine')}").status_code == 201


def test_read_acl_for_a_project_and_write_acl(proxy: ProxyHarness) -> None:
    base, _ = _setup(proxy)
    alpha, beta = proxy.users["alpha"], proxy.users["beta"]
    with proxy.client(alpha) as http:
        assert http.post(base, headers={"X-Container-Read": f"{beta.project_id}:*"}).status_code == 204
        assert http.head(base).headers["x-container-read"] == f"{beta.project_id}:*"
    with proxy.client(beta) as http:
        assert http.get(f"{base}/secret").content == b"alpha's data"
        assert http.get(base).text.split() == ["secret"]
        assert "x-container-read" not in http.head(base).headers  # ACLs are the owner's business
        assert http.put(f"{base}/from-beta", content=b"x").status_code == 403
    with proxy.client(alpha) as http:
        assert http.post(base, headers={"X-Container-Write": f"{beta.project_id}:{beta.user_id}"}).status_code == 204
    with proxy.client(beta) as http:
        assert http.put(f"{base}/from-beta", content=b"x").status_code == 201
    with proxy.client(alpha) as http:
        assert http.post(base, headers={"X-Remove-Container-Read": "x"}).status_code == 204
    with proxy.client(beta) as http:
        assert http.get(f"{base}/secret").status_code == 403


def test_public_read_acl_and_listings(proxy: ProxyHarness) -> None:
    base, _ = _setup(proxy)
    alpha = proxy.users["alpha"]
    with proxy.client(alpha) as http:
        assert http.post(base, headers={"X-Container-Read": ".r:*"}).status_code == 204
    with proxy.client() as anonymous:
        assert anonymous.get(f"{base}/secret").content == b"alpha's data"
        assert anonymous.get(base).status_code == 401  # no .rlistings
        assert anonymous.put(f"{base}/x", content=b"x").status_code == 401
    with proxy.client(alpha) as http:
        assert http.post(base, headers={"X-Container-Read": ".r:*,.rlistings"}).status_code == 204
    with proxy.client() as anonymous:
        assert anonymous.get(base).text.split() == ["secret"]
    with proxy.client(alpha) as http:
        assert http.post(base, headers={"X-Container-Read": ".r:.example.com"}).status_code == 204
    with proxy.client() as anonymous:
        assert anonymous.get(f"{base}/secret", headers={"Referer": "http://www.example.com/x"}).status_code == 200
        assert anonymous.get(f"{base}/secret", headers={"Referer": "http://evil.test/"}).status_code == 401
    with proxy.client(alpha) as http:
        assert http.post(base, headers={"X-Container-Write": ".r:*"}).status_code == 400


def test_tempauth_login_and_groups(proxy: ProxyHarness) -> None:
    with proxy.client() as http:
        assert http.get("/auth/v1.0", headers={"X-Auth-User": "test:tester", "X-Auth-Key": "wrong"}
                        ).status_code == 401
        login = http.get("/auth/v1.0", headers={"X-Auth-User": "test:tester", "X-Auth-Key": "testing"})
        assert login.status_code == 200
        token, storage = login.headers["x-auth-token"], login.headers["x-storage-url"]
        assert storage.endswith("/v1/AUTH_test")
        viewer = http.get("/auth/v1.0", headers={"X-Auth-User": "test:viewer", "X-Auth-Key": "viewing"})
    path = storage[len(proxy.url):]
    container = unique("ta")
    with proxy.client(token=token) as admin:
        assert admin.put(f"{path}/{container}").status_code == 201
        assert admin.put(f"{path}/{container}/o", content=b"tempauth").status_code == 201
    with proxy.client(token=viewer.headers["x-auth-token"]) as http:
        assert http.get(f"{path}/{container}/o").status_code == 403
        assert http.put(f"{path}/{unique('nope')}").status_code == 403
    with proxy.client(token=token) as admin:
        assert admin.post(f"{path}/{container}", headers={"X-Container-Read": "test:viewer"}).status_code == 204
    with proxy.client(token=viewer.headers["x-auth-token"]) as http:
        assert http.get(f"{path}/{container}/o").content == b"tempauth"
    with proxy.client(token=token[:-2] + "00") as forged:
        assert forged.get(f"{path}/{container}/o").status_code == 401


def test_reseller_admin_reaches_every_account(proxy: ProxyHarness) -> None:
    base, _ = _setup(proxy)
    with proxy.client() as http:
        token = http.get("/auth/v1.0", headers={"X-Auth-User": "reseller:root", "X-Auth-Key": "rootpw"}
                         ).headers["x-auth-token"]
    with proxy.client(token=token) as http:
        assert http.get(f"{base}/secret").content == b"alpha's data"


def _sign(key: str, method: str, expires: int, path: str, digest: str = "sha256") -> str:
    return hmac.new(key.encode(), f"{method}\n{expires}\n{path}".encode(), getattr(hashlib, digest)).hexdigest()


def test_tempurl_get_put_expiry_and_method(proxy: ProxyHarness) -> None:
    base, _ = _setup(proxy)
    alpha = proxy.users["alpha"]
    key = "temp-url-key-" + unique("k")
    with proxy.client(alpha) as http:
        assert http.post(proxy.account_url(alpha), headers={"X-Account-Meta-Temp-URL-Key": key}).status_code == 204
    path = f"{base}/secret"
    expires = int(time.time()) + 60
    with httpx.Client(base_url=proxy.url) as anonymous:
        signature = _sign(key, "GET", expires, path)
        got = anonymous.get(path, params={"temp_url_sig": signature, "temp_url_expires": expires})
        assert got.status_code == 200 and got.content == b"alpha's data"
        assert "attachment" in got.headers["content-disposition"]
        sha1 = _sign(key, "GET", expires, path, "sha1")
        assert anonymous.get(path, params={"temp_url_sig": sha1, "temp_url_expires": expires}).status_code == 200
        assert anonymous.head(path, params={"temp_url_sig": signature, "temp_url_expires": expires}
                              ).status_code == 200
        assert anonymous.delete(path, params={"temp_url_sig": signature, "temp_url_expires": expires}
                                ).status_code == 401
        assert anonymous.get(path, params={"temp_url_sig": "0" * 64, "temp_url_expires": expires}).status_code == 401
        past = int(time.time()) - 1
        assert anonymous.get(path, params={"temp_url_sig": _sign(key, "GET", past, path),
                                           "temp_url_expires": past}).status_code == 401
        upload = f"{base}/uploaded"
        put_sig = _sign(key, "PUT", expires, upload)
        assert anonymous.put(upload, params={"temp_url_sig": put_sig, "temp_url_expires": expires},
                             content=b"via tempurl").status_code == 201
    with proxy.client(alpha) as http:
        assert http.get(f"{base}/uploaded").content == b"via tempurl"


def test_tempurl_with_container_key(proxy: ProxyHarness) -> None:
    base, _ = _setup(proxy)
    alpha = proxy.users["alpha"]
    with proxy.client(alpha) as http:
        assert http.post(base, headers={"X-Container-Meta-Temp-URL-Key": "ckey"}).status_code == 204
    expires = int(time.time()) + 60
    with httpx.Client(base_url=proxy.url) as anonymous:
        got = anonymous.get(f"{base}/secret", params={"temp_url_sig": _sign("ckey", "GET", expires, f"{base}/secret"),
                                                      "temp_url_expires": expires})
        assert got.status_code == 200


def test_cors_preflight_and_headers(proxy: ProxyHarness) -> None:
    base, _ = _setup(proxy)
    alpha = proxy.users["alpha"]
    with proxy.client(alpha) as http:
        http.post(base, headers={"X-Container-Meta-Access-Control-Allow-Origin": "http://app.test"})
        assert http.request("OPTIONS", f"{base}/secret", headers={
            "Origin": "http://app.test", "Access-Control-Request-Method": "GET"}).status_code == 200
        assert http.request("OPTIONS", f"{base}/secret", headers={
            "Origin": "http://other.test", "Access-Control-Request-Method": "GET"}).status_code == 401
        got = http.get(f"{base}/secret", headers={"Origin": "http://app.test"})
        assert got.headers["access-control-allow-origin"] == "http://app.test"
        assert "etag" in got.headers["access-control-expose-headers"]
