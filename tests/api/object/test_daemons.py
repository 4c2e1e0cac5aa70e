"""The background daemons end to end on a one-node cluster with three devices and three replicas:
replication (objects and databases), auditing, async updates, expiry and reaping."""

from __future__ import annotations

import hashlib
import os
import shutil
import time
from pathlib import Path

from stratus.object.auditor import ObjectAuditor
from stratus.object.db_replicator import DatabaseReplicator
from stratus.object.expirer import ObjectExpirer
from stratus.object.reaper import AccountReaper
from stratus.object.replicator import ObjectReplicator
from stratus.object.updater import Updater
from tests.api.object.conftest import Cluster, Served, stamp

ACCOUNT, CONTAINER = "AUTH_test", "box"
LOCAL = {"127.0.0.1"}


def replicator(cluster: Cluster) -> ObjectReplicator:
    return ObjectReplicator(cluster.manager(), cluster.ring_dir, ips=LOCAL, port=cluster.servers["object"].port)


def replicas(cluster: Cluster, obj: str) -> list[tuple[int, bytes | None]]:
    """(status, body) of the object on each primary."""
    part, nodes = cluster.ring("object").get_nodes(ACCOUNT, CONTAINER, obj)
    out = []
    for n in nodes:
        response = cluster.client.get(cluster.url(n, part, ACCOUNT, CONTAINER, obj))
        out.append((response.status_code, response.content if response.status_code == 200 else None))
    return out


def setup_container(cluster: Cluster) -> None:
    cluster.create_account(ACCOUNT)
    cluster.create_container(ACCOUNT, CONTAINER)


def account_head(cluster: Cluster) -> dict[str, str]:
    part, nodes = cluster.ring("account").get_nodes(ACCOUNT)
    return dict(cluster.client.head(cluster.url(nodes[0], part, ACCOUNT)).headers)


def test_object_writes_update_listings_and_the_updater_reports_totals(cluster: Cluster) -> None:
    setup_container(cluster)
    cluster.put_object(ACCOUNT, CONTAINER, "a", b"12345")
    for i in range(3):
        assert [(o["name"], o["bytes"]) for o in cluster.listing(ACCOUNT, CONTAINER, i)] == [("a", 5)]
    assert account_head(cluster)["x-account-object-count"] == "0"  # totals go up in the background
    stats = Updater(cluster.devices_dir, cluster.ring_dir).run_once()
    assert stats["reported"] == 3
    head = account_head(cluster)
    assert (head["x-account-object-count"], head["x-account-bytes-used"]) == ("1", "5")
    assert Updater(cluster.devices_dir, cluster.ring_dir).run_once()["reported"] == 0  # nothing new


def restart_container_listener(cluster: Cluster) -> None:
    restarted = Served(cluster.servers["container"].app, cluster.servers["container"].port)
    restarted.start()
    cluster.servers["container"] = restarted


def pending_updates(cluster: Cluster) -> list[Path]:
    return [p for d in cluster.devices_dir.iterdir() for p in (d / "async_pending").glob("*")]


def test_rows_for_the_nodes_own_container_server_skip_http(cluster: Cluster) -> None:
    setup_container(cluster)
    cluster.servers["container"].stop()  # only its HTTP listener: the server itself is in this process
    cluster.put_object(ACCOUNT, CONTAINER, "direct", b"x")
    assert pending_updates(cluster) == []
    restart_container_listener(cluster)
    for i in range(3):
        assert [o["name"] for o in cluster.listing(ACCOUNT, CONTAINER, i)] == ["direct"]


def test_updater_retries_container_updates_that_failed(cluster: Cluster) -> None:
    setup_container(cluster)
    cluster.servers["object"].app.local_containers.clear()  # as if the container servers ran elsewhere
    cluster.servers["container"].stop()
    cluster.put_object(ACCOUNT, CONTAINER, "late", b"x")
    pending = [p for d in cluster.devices_dir.iterdir() for p in (d / "async_pending").glob("*")]
    assert len(pending) == 3
    updater = Updater(cluster.devices_dir, cluster.ring_dir, timeout=2)
    assert updater.run_once()["failed"] == 3  # still down: kept for later
    restart_container_listener(cluster)
    assert updater.run_once()["sent"] == 3
    assert [o["name"] for o in cluster.listing(ACCOUNT, CONTAINER)] == ["late"]
    assert not pending_updates(cluster)


def test_replicator_writes_a_replica_that_a_down_device_missed(cluster: Cluster) -> None:
    setup_container(cluster)
    part, nodes = cluster.ring("object").get_nodes(ACCOUNT, CONTAINER, "o")
    data = os.urandom(300_000)
    for n in nodes[:2]:  # the third device was unreachable during the PUT
        cluster.client.put(cluster.url(n, part, ACCOUNT, CONTAINER, "o"), content=data,
                           headers={"x-timestamp": stamp(), "x-object-meta-k": "v"})
    assert [s for s, _ in replicas(cluster, "o")] == [200, 200, 404]
    stats = replicator(cluster).run_once()
    assert stats["pushed"] >= 1 and stats["failures"] == 0
    assert replicas(cluster, "o") == [(200, data)] * 3
    head = cluster.client.head(cluster.url(nodes[2], part, ACCOUNT, CONTAINER, "o")).headers
    assert head["x-object-meta-k"] == "v" and head["etag"] == hashlib.md5(data).hexdigest()
    assert replicator(cluster).run_once()["pushed"] == 0  # in sync now


def test_replicator_refills_a_replaced_device(cluster: Cluster) -> None:
    setup_container(cluster)
    for i in range(20):
        cluster.put_object(ACCOUNT, CONTAINER, f"o{i}", f"body {i}".encode())
    shutil.rmtree(cluster.devices_dir / "d2" / "objects")
    replicator(cluster).run_once()
    for i in range(20):
        assert replicas(cluster, f"o{i}") == [(200, f"body {i}".encode())] * 3


def test_a_newer_tombstone_and_metadata_propagate(cluster: Cluster) -> None:
    setup_container(cluster)
    cluster.put_object(ACCOUNT, CONTAINER, "gone", b"x")
    cluster.put_object(ACCOUNT, CONTAINER, "meta", b"y")
    part, nodes = cluster.ring("object").get_nodes(ACCOUNT, CONTAINER, "gone")
    cluster.client.delete(cluster.url(nodes[0], part, ACCOUNT, CONTAINER, "gone"), headers={"x-timestamp": stamp(1)})
    mpart, mnodes = cluster.ring("object").get_nodes(ACCOUNT, CONTAINER, "meta")
    cluster.client.post(cluster.url(mnodes[1], mpart, ACCOUNT, CONTAINER, "meta"),
                        headers={"x-timestamp": stamp(1), "x-object-meta-new": "1"})
    replicator(cluster).run_once()
    assert [s for s, _ in replicas(cluster, "gone")] == [404, 404, 404]
    for n in mnodes:
        head = cluster.client.head(cluster.url(n, mpart, ACCOUNT, CONTAINER, "meta"))
        assert head.headers.get("x-object-meta-new") == "1"


def test_auditor_quarantines_a_corrupt_replica_and_replication_restores_it(cluster: Cluster) -> None:
    setup_container(cluster)
    data = b"precious bytes" * 1000
    cluster.put_object(ACCOUNT, CONTAINER, "p", data)
    part, nodes = cluster.ring("object").get_nodes(ACCOUNT, CONTAINER, "p")
    victim = nodes[1]["device"]
    df = cluster.manager().get(victim, part, ACCOUNT, CONTAINER, "p").open()
    assert df.data_file is not None
    with open(df.data_file, "r+b") as f:  # same length, different bytes
        f.write(b"PRECIOUS")
    stats = ObjectAuditor(cluster.manager()).run_once()
    assert stats == {"checked": 3, "quarantined": 1}
    assert list((cluster.devices_dir / victim / "quarantined" / "objects").iterdir())
    assert [s for s, _ in replicas(cluster, "p")] == [200, 404, 200]
    replicator(cluster).run_once()
    assert replicas(cluster, "p") == [(200, data)] * 3
    assert ObjectAuditor(cluster.manager()).run_once() == {"checked": 3, "quarantined": 0}


def test_expirer_deletes_objects_past_their_delete_at(cluster: Cluster) -> None:
    setup_container(cluster)
    due = int(time.time()) + 60
    cluster.put_object(ACCOUNT, CONTAINER, "temp", b"x", headers={"x-delete-at": str(due)})
    cluster.put_object(ACCOUNT, CONTAINER, "keep", b"x")
    expirer = ObjectExpirer(cluster.manager(), cluster.ring_dir)
    assert expirer.run_once(now=due - 10) == {"expired": 0, "skipped": 0}
    assert expirer.run_once(now=due + 1)["expired"] == 3  # each replica's device expires its copy
    part, nodes = cluster.ring("object").get_nodes(ACCOUNT, CONTAINER, "temp")
    for n in nodes:
        df = cluster.manager().get(n["device"], part, ACCOUNT, CONTAINER, "temp").open()
        assert df.deleted
    for i in range(3):
        assert [o["name"] for o in cluster.listing(ACCOUNT, CONTAINER, i)] == ["keep"]


def test_expirer_leaves_an_object_rewritten_without_delete_at(cluster: Cluster) -> None:
    setup_container(cluster)
    due = int(time.time()) + 60
    cluster.put_object(ACCOUNT, CONTAINER, "t", b"x", headers={"x-delete-at": str(due)})
    cluster.put_object(ACCOUNT, CONTAINER, "t", b"kept", timestamp=stamp(1))
    assert ObjectExpirer(cluster.manager(), cluster.ring_dir).run_once(now=due + 1) == {"expired": 0, "skipped": 3}
    assert replicas(cluster, "t") == [(200, b"kept")] * 3


def test_reaper_removes_a_deleted_accounts_data(cluster: Cluster) -> None:
    setup_container(cluster)
    for i in range(3):
        cluster.put_object(ACCOUNT, CONTAINER, f"o{i}", b"data")
    part, nodes = cluster.ring("account").get_nodes(ACCOUNT)
    for n in nodes:
        assert cluster.client.delete(cluster.url(n, part, ACCOUNT), headers={"x-timestamp": stamp()}).status_code == 204
    stats = AccountReaper(cluster.devices_dir, cluster.ring_dir, ips=LOCAL,
                          port=cluster.servers["account"].port).run_once()
    assert stats["accounts"] == 1 and stats["containers"] == 1 and stats["objects"] == 3
    for i in range(3):
        assert [s for s, _ in replicas(cluster, f"o{i}")] == [404, 404, 404]
    cpart, cnodes = cluster.ring("container").get_nodes(ACCOUNT, CONTAINER)
    for n in cnodes:
        assert cluster.client.head(cluster.url(n, cpart, ACCOUNT, CONTAINER)).status_code == 404
    for n in nodes:
        listing = cluster.client.get(cluster.url(n, part, ACCOUNT), params={"format": "json"})
        assert listing.status_code == 404  # deleted; and it lists no container any more:
    from stratus.object.db import AccountBroker, db_path
    from stratus.object.utils import hash_path, load_hash_secret

    name_hash = hash_path(load_hash_secret(cluster.ring_dir), ACCOUNT)
    broker = AccountBroker(db_path(cluster.devices_dir / nodes[0]["device"], "accounts", part, name_hash))
    assert broker.info()["container_count"] == 0


def _container_db(cluster: Cluster, device: str) -> Path:
    from stratus.object.db import db_path
    from stratus.object.utils import hash_path, load_hash_secret

    part = cluster.ring("container").get_part(ACCOUNT, CONTAINER)
    return db_path(cluster.devices_dir / device, "containers", part,
                   hash_path(load_hash_secret(cluster.ring_dir), ACCOUNT, CONTAINER))


def test_database_replicator_restores_a_lost_container_db_and_merges_rows(cluster: Cluster) -> None:
    setup_container(cluster)
    for i in range(5):
        cluster.put_object(ACCOUNT, CONTAINER, f"o{i}", b"abc")
    cpart, cnodes = cluster.ring("container").get_nodes(ACCOUNT, CONTAINER)
    shutil.rmtree(_container_db(cluster, cnodes[2]["device"]).parent)
    # A row and a metadata change that only one replica saw.
    cluster.client.put(cluster.url(cnodes[0], cpart, ACCOUNT, CONTAINER, "only-here"),
                       headers={"x-timestamp": stamp(), "x-size": "7", "x-etag": "e", "x-content-type": "a/b"})
    cluster.client.post(cluster.url(cnodes[0], cpart, ACCOUNT, CONTAINER),
                        headers={"x-timestamp": stamp(), "x-container-meta-tag": "t"})
    stats = DatabaseReplicator("container", cluster.devices_dir, cluster.ring_dir, ips=LOCAL,
                               port=cluster.servers["container"].port).run_once()
    assert stats["failures"] == 0
    expected = [f"o{i}" for i in range(5)] + ["only-here"]
    for i in range(3):
        assert [o["name"] for o in cluster.listing(ACCOUNT, CONTAINER, i)] == expected
        head = cluster.client.head(cluster.url(cnodes[i], cpart, ACCOUNT, CONTAINER)).headers
        assert head["x-container-meta-tag"] == "t" and head["x-container-object-count"] == "6"
    again = DatabaseReplicator("container", cluster.devices_dir, cluster.ring_dir, ips=LOCAL,
                               port=cluster.servers["container"].port).run_once()
    assert again["rows"] == 0  # sync points remembered: nothing is sent twice


def test_a_corrupt_container_db_is_quarantined_and_rebuilt(cluster: Cluster) -> None:
    from stratus.object.auditor import DatabaseAuditor

    setup_container(cluster)
    cluster.put_object(ACCOUNT, CONTAINER, "kept", b"abc")
    cpart, cnodes = cluster.ring("container").get_nodes(ACCOUNT, CONTAINER)
    db_file = _container_db(cluster, cnodes[1]["device"])
    for extra in ("-wal", "-shm"):
        Path(str(db_file) + extra).unlink(missing_ok=True)
    db_file.write_bytes(b"this is not a database" * 100)
    stats = DatabaseAuditor(cluster.devices_dir).run_once()
    assert stats["quarantined"] == 1
    assert not db_file.exists()
    assert cluster.client.head(cluster.url(cnodes[1], cpart, ACCOUNT, CONTAINER)).status_code == 404
    DatabaseReplicator("container", cluster.devices_dir, cluster.ring_dir, ips=LOCAL,
                       port=cluster.servers["container"].port).run_once()
    assert [o["name"] for o in cluster.listing(ACCOUNT, CONTAINER, 1)] == ["kept"]


def test_a_handoff_partition_goes_to_its_primaries_and_leaves_the_handoff(cluster4: Cluster) -> None:
    cluster = cluster4
    setup_container(cluster)
    ring = cluster.ring("object")
    part, nodes = ring.get_nodes(ACCOUNT, CONTAINER, "h")
    handoff = next(iter(ring.get_more_nodes(part)))
    # The proxy wrote to the handoff while the third primary was down.
    for n in (nodes[0], nodes[1], handoff):
        assert cluster.client.put(cluster.url(n, part, ACCOUNT, CONTAINER, "h"), content=b"handed",
                                  headers={"x-timestamp": stamp()}).status_code == 201
    stats = replicator(cluster).run_once()
    assert stats["reverted"] == 1 and stats["failures"] == 0
    assert replicas(cluster, "h") == [(200, b"handed")] * 3
    assert not (cluster.devices_dir / handoff["device"] / "objects" / str(part)).exists()
    assert cluster.client.get(cluster.url(handoff, part, ACCOUNT, CONTAINER, "h")).status_code == 404


def test_a_handoff_container_db_goes_to_its_primaries(cluster4: Cluster) -> None:
    cluster = cluster4
    cluster.create_account(ACCOUNT)
    ring = cluster.ring("container")
    part, nodes = ring.get_nodes(ACCOUNT, "handed")
    handoff = next(iter(ring.get_more_nodes(part)))
    for n in (nodes[0], nodes[1], handoff):
        assert cluster.client.put(cluster.url(n, part, ACCOUNT, "handed"),
                                  headers={"x-timestamp": stamp()}).status_code == 201
    cluster.client.put(cluster.url(handoff, part, ACCOUNT, "handed", "obj"),
                       headers={"x-timestamp": stamp(), "x-size": "3", "x-etag": "e"})
    stats = DatabaseReplicator("container", cluster.devices_dir, cluster.ring_dir, ips=LOCAL,
                               port=cluster.servers["container"].port).run_once()
    assert stats["removed"] == 1
    for i in range(3):
        assert [o["name"] for o in cluster.listing(ACCOUNT, "handed", i)] == ["obj"]
    assert cluster.client.head(cluster.url(handoff, part, ACCOUNT, "handed")).status_code == 404


def test_utf8_metadata_and_content_type_survive_replication_and_listings(cluster: Cluster) -> None:
    setup_container(cluster)
    part, nodes = cluster.ring("object").get_nodes(ACCOUNT, CONTAINER, "u")
    cpart, cnodes = cluster.ring("container").get_nodes(ACCOUNT, CONTAINER)
    value, ctype = "naïve ☂".encode(), "text/plain; name=é".encode()
    for i, n in enumerate(nodes[:2]):
        cluster.client.put(cluster.url(n, part, ACCOUNT, CONTAINER, "u"), content=b"x", headers={
            b"x-timestamp": stamp().encode(), b"x-object-meta-w": value, b"content-type": ctype,
            b"x-container-host": f"127.0.0.1:{cnodes[i]['port']}".encode(),
            b"x-container-device": cnodes[i]["device"].encode(), b"x-container-partition": str(cpart).encode()})
    replicator(cluster).run_once()
    raw = dict(cluster.client.head(cluster.url(nodes[2], part, ACCOUNT, CONTAINER, "u")).headers.raw)
    assert raw[b"x-object-meta-w"] == value and raw[b"content-type"] == ctype
    assert cluster.listing(ACCOUNT, CONTAINER)[0]["content_type"] == "text/plain; name=é"


def test_partitions_found_in_sync_are_not_asked_about_again_until_they_change(cluster: Cluster) -> None:
    import httpx

    setup_container(cluster)
    cluster.put_object(ACCOUNT, CONTAINER, "s", b"x")
    sent: list[str] = []
    client = httpx.Client(timeout=10, event_hooks={"request": [lambda request: sent.append(request.method)]})
    daemon = ObjectReplicator(cluster.manager(), cluster.ring_dir, ips=LOCAL, port=cluster.servers["object"].port,
                              client=client)
    daemon.run_once()
    assert sent and set(sent) == {"POST"}  # REPLICATE questions only: everything was in place
    sent.clear()
    daemon.run_once()
    assert sent == []
    part, nodes = cluster.ring("object").get_nodes(ACCOUNT, CONTAINER, "s")
    cluster.client.delete(cluster.url(nodes[0], part, ACCOUNT, CONTAINER, "s"), headers={"x-timestamp": stamp(1)})
    daemon.run_once()  # that partition changed on one device: asked again, and the tombstone goes out
    assert "DELETE" in sent
    assert [s for s, _ in replicas(cluster, "s")] == [404, 404, 404]
    daemon.recheck_seconds = 0
    sent.clear()
    daemon.run_once()
    assert sent  # and every partition is asked about again once recheck_seconds have passed


def test_unchanged_databases_are_not_offered_again(cluster: Cluster) -> None:
    import httpx

    setup_container(cluster)
    cluster.put_object(ACCOUNT, CONTAINER, "x", b"x")
    sent: list[str] = []
    client = httpx.Client(timeout=10, event_hooks={"request": [lambda request: sent.append(str(request.url))]})
    daemon = DatabaseReplicator("container", cluster.devices_dir, cluster.ring_dir, ips=LOCAL,
                                port=cluster.servers["container"].port, client=client)
    daemon.run_once()
    assert sent
    daemon.run_once()  # (the replicas' put timestamps differ in this set-up: the first pass aligns them)
    sent.clear()
    daemon.run_once()
    assert sent == []
    cluster.put_object(ACCOUNT, CONTAINER, "y", b"y")  # a new row on every replica: offered again
    daemon.run_once()
    assert sent
