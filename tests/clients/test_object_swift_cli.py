"""The official `swift` CLI (python-swiftclient) against `stratus up`, with Keystone v3 and with TempAuth.

The object-store endpoint comes from the token's catalog, as the CLI finds it. Set-up that is not under
test (a second project, reading back what the CLI wrote) goes over plain HTTP.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.clients.conftest import ADMIN_PASSWORD, CLI_TIMEOUT, VENV_BIN, Cloud, _clean_environ, unique

MEMBER_PASSWORD = "object-Member-pw1"
TEMPAUTH = ("test:tester", "testing")  # configured for the test cloud in tests/clients/conftest.py


def object_endpoint(cloud: Cloud) -> str:
    """The admin's object-store URL from the catalog (`.../v1/AUTH_<project>`)."""
    _, body = cloud.admin_token()
    for entry in body["catalog"]:
        if entry["type"] == "object-store":
            return next(ep["url"] for ep in entry["endpoints"] if ep["interface"] == "public")
    raise AssertionError("no object-store endpoint in the catalog")


@dataclass
class Swift:
    """`swift` with one set of credentials."""

    cloud: Cloud
    auth: dict[str, str]
    cwd: Path

    def run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        env = {**_clean_environ(), **self.auth}
        done = subprocess.run([str(VENV_BIN / "swift"), *args], env=env, capture_output=True, text=True,
                              timeout=CLI_TIMEOUT, cwd=self.cwd)
        if check and done.returncode != 0:
            pytest.fail(f"swift {' '.join(args)} exited {done.returncode}\nstdout: {done.stdout}\n"
                        f"stderr: {done.stderr}")
        return done

    def stat(self, *args: str) -> dict[str, str]:
        """`swift stat` output as a dict of its `Name: value` lines."""
        out = {}
        for line in self.run("stat", *args).stdout.splitlines():
            name, sep, value = line.partition(":")
            if sep:
                out[name.strip()] = value.strip()
        return out


def keystone_auth(cloud: Cloud, user: str, password: str, project: str) -> dict[str, str]:
    return {"OS_AUTH_URL": cloud.auth_url, "OS_IDENTITY_API_VERSION": "3", "OS_USERNAME": user,
            "OS_PASSWORD": password, "OS_PROJECT_NAME": project, "OS_USER_DOMAIN_NAME": "Default",
            "OS_PROJECT_DOMAIN_NAME": "Default", "OS_REGION_NAME": "RegionOne"}


@pytest.fixture(scope="module")
def admin_swift(cloud: Cloud, tmp_path_factory: pytest.TempPathFactory) -> Swift:
    return Swift(cloud, keystone_auth(cloud, "admin", ADMIN_PASSWORD, "admin"), tmp_path_factory.mktemp("swift"))


def _member(cloud: Cloud, name: str) -> tuple[str, str]:
    """A new project with a member user over plain HTTP; returns (user name, project name)."""
    token, _ = cloud.admin_token()
    headers = {"X-Auth-Token": token}
    project = httpx.post(f"{cloud.auth_url}/projects", headers=headers,
                         json={"project": {"name": name, "domain_id": "default"}}).json()["project"]
    user = httpx.post(f"{cloud.auth_url}/users", headers=headers, json={"user": {
        "name": f"{name}-user", "password": MEMBER_PASSWORD, "domain_id": "default"}}).json()["user"]
    role = httpx.get(f"{cloud.auth_url}/roles?name=member", headers=headers).json()["roles"][0]
    response = httpx.put(f"{cloud.auth_url}/projects/{project['id']}/users/{user['id']}/roles/{role['id']}",
                         headers=headers)
    assert response.status_code == 204
    return f"{name}-user", name


def _files(root: Path) -> dict[str, bytes]:
    tree = {"docs/a.txt": b"alpha\n", "docs/sub/b.bin": os.urandom(70_000), "docs/sub/c.txt": b"gamma\n"}
    for name, data in tree.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return tree


def test_keystone_stat_post_upload_list_download_copy_delete(admin_swift: Swift, cloud: Cloud) -> None:
    swift, work = admin_swift, admin_swift.cwd
    account = swift.stat()
    assert account["Account"].startswith("AUTH_")
    container = unique("cli")
    swift.run("post", "-r", ".r:*,.rlistings", "-m", "Owner:ops", container)
    info = swift.stat(container)
    assert info["Read ACL"] == ".r:*,.rlistings" and info["Meta Owner"] == "ops"
    tree = _files(work)
    swift.run("upload", container, "docs")
    listing = swift.run("list", container).stdout.split()
    assert sorted(listing) == sorted(tree)
    assert swift.run("list", container, "--prefix", "docs/sub/").stdout.split() == ["docs/sub/b.bin",
                                                                                       "docs/sub/c.txt"]
    assert swift.run("list", container, "--delimiter", "/").stdout.split() == ["docs/"]
    assert swift.run("list", container, "--prefix", "docs/", "--delimiter", "/").stdout.split() == [
        "docs/a.txt", "docs/sub/"]
    out = work / "out"
    swift.run("download", container, "--output-dir", str(out))
    for name, data in tree.items():
        assert (out / name).read_bytes() == data
    swift.run("copy", container, "docs/a.txt", "--destination", f"/{container}/copied.txt", "-m", "Copied:yes")
    copied = swift.stat(container, "copied.txt")
    assert copied["Meta Copied"] == "yes" and copied["Content Length"] == str(len(tree["docs/a.txt"]))
    # the public read ACL lets anyone read and list
    base = object_endpoint(cloud)
    assert httpx.get(f"{base}/{container}/docs/a.txt").content == tree["docs/a.txt"]
    assert "copied.txt" in httpx.get(f"{base}/{container}").text.split()
    swift.run("delete", container, "docs/a.txt")
    assert "docs/a.txt" not in swift.run("list", container).stdout.split()
    swift.run("delete", container)
    assert container not in swift.run("list").stdout.split()


@pytest.mark.parametrize("kind", ["slo", "dlo"])
def test_segmented_upload_and_byte_identical_download(admin_swift: Swift, kind: str) -> None:
    swift, work = admin_swift, admin_swift.cwd
    container = unique(kind)
    data = os.urandom(1_000_000 + 4321)
    source = work / f"big-{kind}.bin"
    source.write_bytes(data)
    flags = ["--use-dlo"] if kind == "dlo" else []
    swift.run("upload", container, source.name, "--segment-size", "250000", *flags)
    info = swift.stat(container, source.name)
    assert info["Content Length"] == str(len(data))
    if kind == "slo":
        assert info["X-Static-Large-Object"] == "True"
    else:
        assert info["Manifest"].startswith(f"{container}_segments/")
    segments = swift.run("list", f"{container}_segments").stdout.split()
    assert len(segments) == 5
    target = work / f"downloaded-{kind}.bin"
    swift.run("download", container, source.name, "--output", str(target))
    assert hashlib.md5(target.read_bytes()).hexdigest() == hashlib.md5(data).hexdigest()
    swift.run("delete", container, source.name)
    assert swift.run("list", f"{container}_segments").stdout.split() == []


def test_tempurl(admin_swift: Swift, cloud: Cloud) -> None:
    swift, work = admin_swift, admin_swift.cwd
    container = unique("tmp")
    (work / "temp.txt").write_bytes(b"temporary access")
    swift.run("upload", container, "temp.txt")
    key = "cli-temp-url-key"
    swift.run("post", "-m", f"Temp-URL-Key:{key}")
    path = "/" + object_endpoint(cloud).split("/", 3)[3] + f"/{container}/temp.txt"
    signed = swift.run("tempurl", "GET", "600", path, key).stdout.strip()
    root = object_endpoint(cloud).split("/v1/")[0]
    assert httpx.get(root + signed).content == b"temporary access"
    assert httpx.put(root + signed, content=b"x").status_code == 401  # signed for GET only
    assert httpx.get(root + path).status_code == 401


def test_another_project_is_refused_until_an_acl_allows_it(admin_swift: Swift, cloud: Cloud) -> None:
    container = unique("private")
    (admin_swift.cwd / "private.txt").write_bytes(b"admin only")
    admin_swift.run("upload", container, "private.txt")
    user, project = _member(cloud, unique("objproj"))
    other = Swift(cloud, keystone_auth(cloud, user, MEMBER_PASSWORD, project), admin_swift.cwd)
    assert other.stat()["Account"] != admin_swift.stat()["Account"]
    assert container not in other.run("list").stdout.split()
    storage = object_endpoint(cloud)
    denied = other.run("--os-storage-url", storage, "list", container, check=False)
    assert denied.returncode != 0 and "403" in denied.stderr
    denied = other.run("--os-storage-url", storage, "download", container, "private.txt", "-o", "-", check=False)
    assert denied.returncode != 0
    project_id = other.stat()["Account"].removeprefix("AUTH_")
    admin_swift.run("post", "-r", f"{project_id}:*", container)
    allowed = other.run("--os-storage-url", storage, "download", container, "private.txt", "-o", "-")
    assert allowed.stdout == "admin only"


def test_tempauth(cloud: Cloud, tmp_path: Path) -> None:
    root = object_endpoint(cloud).split("/v1/")[0]
    swift = Swift(cloud, {"ST_AUTH": f"{root}/auth/v1.0", "ST_USER": TEMPAUTH[0], "ST_KEY": TEMPAUTH[1]}, tmp_path)
    assert swift.stat()["Account"] == "AUTH_test"
    container = unique("ta")
    (tmp_path / "f.txt").write_bytes(b"tempauth file")
    swift.run("upload", container, "f.txt")
    assert swift.run("list", container).stdout.split() == ["f.txt"]
    swift.run("download", container, "f.txt", "-o", str(tmp_path / "g.txt"))
    assert (tmp_path / "g.txt").read_bytes() == b"tempauth file"
    wrong = Swift(cloud, {"ST_AUTH": f"{root}/auth/v1.0", "ST_USER": TEMPAUTH[0], "ST_KEY": "nope"}, tmp_path)
    assert wrong.run("stat", check=False).returncode != 0
    swift.run("delete", container)
    caps = json.loads(swift.run("capabilities", "--json").stdout)
    assert "slo" in caps and "tempurl" in caps
