"""The account server: the account's life, container rows with totals, listings."""

from __future__ import annotations

from starlette.testclient import TestClient

from tests.api.object.conftest import stamp

A = "/d2/1/AUTH_a"


def row(client: TestClient, name: str, count: int, used: int, put: str, deleted: str = "0") -> int:
    return client.put(f"{A}/{name}", headers={"x-put-timestamp": put, "x-delete-timestamp": deleted,
                                              "x-object-count": str(count), "x-bytes-used": str(used),
                                              "x-timestamp": put}).status_code


def test_account_totals_follow_container_rows(account_client: TestClient) -> None:
    assert account_client.put(A, headers={"x-timestamp": stamp()}).status_code == 201
    assert account_client.put(A, headers={"x-timestamp": stamp()}).status_code == 202
    created = stamp()
    assert row(account_client, "c1", 2, 20, created) == 201
    assert row(account_client, "c2", 3, 30, stamp()) == 201
    assert row(account_client, "c1", 5, 50, stamp(1)) == 201  # newer totals for c1
    assert row(account_client, "c1", 1, 1, created) == 201   # an older report changes nothing
    head = account_client.head(A).headers
    assert (head["x-account-container-count"], head["x-account-object-count"], head["x-account-bytes-used"]) \
        == ("2", "8", "80")
    listing = account_client.get(A, params={"format": "json"}).json()
    assert [(c["name"], c["count"], c["bytes"]) for c in listing] == [("c1", 5, 50), ("c2", 3, 30)]
    assert set(listing[0]) == {"name", "count", "bytes", "last_modified"}
    assert row(account_client, "c2", 0, 0, stamp(-100), deleted=stamp(2)) == 204
    assert account_client.get(A).text.splitlines() == ["c1"]
    assert account_client.head(A).headers["x-account-container-count"] == "1"


def test_listing_parameters(account_client: TestClient) -> None:
    account_client.put(A, headers={"x-timestamp": stamp()})
    for name in ("a", "b-1", "b-2", "c"):
        row(account_client, name, 0, 0, stamp())
    def names(**params: str) -> list[str]:
        items = account_client.get(A, params={"format": "json", **params}).json()
        return [i.get("name", i.get("subdir")) for i in items]
    assert names(prefix="b") == ["b-1", "b-2"]
    assert names(delimiter="-") == ["a", "b-", "c"]
    assert names(marker="a", limit="2") == ["b-1", "b-2"]
    assert names(reverse="on", end_marker="a") == ["c", "b-2", "b-1"]
    assert "<account name=\"AUTH_a\">" in account_client.get(A, params={"format": "xml"}).text


def test_metadata_and_deletion(account_client: TestClient) -> None:
    account_client.put(A, headers={"x-timestamp": stamp(), "x-account-meta-quota": "5",
                                   "x-account-sysmeta-temp-url-key": "k"})
    assert account_client.post(A, headers={"x-timestamp": stamp(1), "x-account-meta-x": "y"}).status_code == 204
    head = account_client.head(A).headers
    assert head["x-account-meta-quota"] == "5" and head["x-account-meta-x"] == "y"
    assert head["x-account-sysmeta-temp-url-key"] == "k"
    assert account_client.delete(A, headers={"x-timestamp": stamp(2)}).status_code == 204
    gone = account_client.head(A)
    assert gone.status_code == 404 and gone.headers["x-account-status"] == "Deleted"
    assert account_client.put(A, headers={"x-timestamp": stamp(3)}).status_code == 403
    assert account_client.get("/d2/1/AUTH_none").status_code == 404
