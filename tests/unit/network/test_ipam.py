"""IP address management: address arithmetic, validation, EUI-64, and allocation against a real database."""

from __future__ import annotations

import ipaddress
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from stratus.core.db import Database
from stratus.network import ipam, models
from stratus.network.errors import InvalidInput, IpAddressGenerationFailure, IpAddressInUse

# -- pure logic ------------------------------------------------------------------------------------------------


def test_default_gateway_and_pools_for_ipv4() -> None:
    net = ipam.parse_cidr("10.0.0.0/24", 4)
    assert ipam.default_gateway(net) == "10.0.0.1"
    assert ipam.default_pools(net, "10.0.0.1") == [{"start": "10.0.0.2", "end": "10.0.0.254"}]
    assert ipam.default_pools(net, None) == [{"start": "10.0.0.1", "end": "10.0.0.254"}]
    assert ipam.default_pools(net, "10.0.0.100") == [{"start": "10.0.0.1", "end": "10.0.0.99"},
                                                     {"start": "10.0.0.101", "end": "10.0.0.254"}]
    # A gateway outside the CIDR takes nothing from the pool.
    assert ipam.default_pools(net, "10.0.1.1") == [{"start": "10.0.0.1", "end": "10.0.0.254"}]


def test_default_gateway_and_pools_for_ipv6_skip_the_subnet_router_anycast_address() -> None:
    net = ipam.parse_cidr("2001:db8::/64", 6)
    assert ipam.default_gateway(net) == "2001:db8::1"
    assert ipam.default_pools(net, "2001:db8::1") == [{"start": "2001:db8::2", "end": "2001:db8::ffff:ffff:ffff:ffff"}]
    assert ipam.default_pools(net, None) == [{"start": "2001:db8::1", "end": "2001:db8::ffff:ffff:ffff:ffff"}]


def test_plan_subnet_fills_in_defaults_and_keeps_an_explicit_no_gateway() -> None:
    plan = ipam.plan_subnet(subnet_id="s", ip_version=4, cidr="192.168.1.0/28")
    assert (plan.gateway_ip, plan.allocation_pools) == ("192.168.1.1", [{"start": "192.168.1.2",
                                                                         "end": "192.168.1.14"}])
    plan = ipam.plan_subnet(subnet_id="s", ip_version=4, cidr="192.168.1.0/28", gateway_ip=None)
    assert (plan.gateway_ip, plan.allocation_pools) == (None, [{"start": "192.168.1.1", "end": "192.168.1.14"}])
    plan = ipam.plan_subnet(subnet_id="s", ip_version=6, cidr="2001:DB8::/64", dns_nameservers=["2001:4860::8888"],
                            host_routes=[{"destination": "::/0", "nexthop": "2001:db8::fe"}])
    assert plan.cidr == "2001:db8::/64" and plan.dns_nameservers == ["2001:4860::8888"]
    assert plan.host_routes == [{"destination": "::/0", "nexthop": "2001:db8::fe"}]


@pytest.mark.parametrize(("kwargs", "error"), [
    ({"cidr": "10.0.0.1/24"}, InvalidInput),
    ({"cidr": "10.0.0.0"}, InvalidInput),
    ({"cidr": "10.0.0.0/24", "ip_version": 6}, InvalidInput),
    ({"cidr": "0.0.0.0/0"}, InvalidInput),
    ({"ip_version": 3}, InvalidInput),
    ({"gateway_ip": "10.0.0.255"}, InvalidInput),
    ({"gateway_ip": "10.0.0.0"}, InvalidInput),
    ({"gateway_ip": "fe80::1"}, InvalidInput),
    ({"allocation_pools": [{"start": "10.0.0.5"}]}, ipam.InvalidAllocationPool),
    ({"allocation_pools": [{"start": "10.0.0.9", "end": "10.0.0.5"}]}, ipam.InvalidAllocationPool),
    ({"allocation_pools": [{"start": "fd00::1", "end": "fd00::5"}]}, ipam.InvalidAllocationPool),
    ({"allocation_pools": [{"start": "10.0.0.200", "end": "10.0.0.255"}]}, ipam.OutOfBoundsAllocationPool),
    ({"allocation_pools": [{"start": "10.0.0.2", "end": "10.0.0.9"}, {"start": "10.0.0.9", "end": "10.0.0.20"}]},
     ipam.OverlappingAllocationPools),
    ({"gateway_ip": "10.0.0.5", "allocation_pools": [{"start": "10.0.0.2", "end": "10.0.0.9"}]},
     ipam.GatewayConflictWithAllocationPools),
    ({"dns_nameservers": ["10.0.0.1"] * 2}, InvalidInput),
    ({"dns_nameservers": ["fd00::1"]}, InvalidInput),
    ({"host_routes": [{"destination": "10.1.0.0/16"}]}, InvalidInput),
    ({"host_routes": [{"destination": "10.1.0.0/16", "nexthop": "10.0.0.1"}] * 2}, InvalidInput),
    ({"host_routes": [{"destination": f"10.{i}.0.0/16", "nexthop": "10.0.0.1"} for i in range(21)]},
     ipam.HostRoutesExhausted),
    ({"ipv6_address_mode": "slaac"}, InvalidInput),
])
def test_plan_subnet_refuses_bad_attributes(kwargs: dict[str, Any], error: type[Exception]) -> None:
    with pytest.raises(error):
        ipam.plan_subnet(**{"subnet_id": "s", "ip_version": 4, "cidr": "10.0.0.0/24", **kwargs})


@pytest.mark.parametrize(("ra", "address", "cidr", "dhcp", "ok"), [
    ("slaac", "slaac", "2001:db8::/64", True, True),
    (None, "slaac", "2001:db8::/64", True, True),
    ("dhcpv6-stateless", "dhcpv6-stateless", "2001:db8::/64", True, True),
    ("dhcpv6-stateful", "dhcpv6-stateful", "2001:db8::/100", True, True),
    ("slaac", None, "2001:db8::/64", True, True),
    ("slaac", "dhcpv6-stateful", "2001:db8::/64", True, False),
    (None, "slaac", "2001:db8::/80", True, False),
    (None, "dhcpv6-stateless", "2001:db8::/56", True, False),
    ("slaac", "slaac", "2001:db8::/64", False, False),
    (None, "eui64", "2001:db8::/64", True, False),
])
def test_ipv6_mode_combinations(ra: str | None, address: str | None, cidr: str, dhcp: bool, ok: bool) -> None:
    net = ipam.parse_cidr(cidr, 6)
    if ok:
        ipam.validate_ipv6_modes(net, ra, address, dhcp)
    else:
        with pytest.raises(InvalidInput):
            ipam.validate_ipv6_modes(net, ra, address, dhcp)


def test_eui64_of_a_known_mac() -> None:
    assert ipam.eui64("2001:db8::/64", "fa:16:3e:11:22:33") == "2001:db8::f816:3eff:fe11:2233"
    # The universal/local bit flips both ways.
    assert ipam.eui64("fd00:1:2:3::/64", "00:00:5e:00:53:01") == "fd00:1:2:3:200:5eff:fe00:5301"


def test_the_cidrs_of_one_network_may_not_overlap() -> None:
    existing = [models.Subnet(cidr="10.0.0.0/16"), models.Subnet(cidr="fd00::/64")]
    with pytest.raises(InvalidInput, match="overlaps with another subnet"):
        ipam.check_cidr_overlap(existing, "10.0.200.0/24", "net")
    ipam.check_cidr_overlap(existing, "10.1.0.0/24", "net")
    ipam.check_cidr_overlap(existing, "fd01::/64", "net")


def test_pool_addresses_never_include_gateway_network_or_broadcast() -> None:
    # Pools that (wrongly) cover everything still never give the reserved addresses.
    subnet = models.Subnet(cidr="10.0.0.0/29", gateway_ip="10.0.0.3",
                           allocation_pools=[{"start": "10.0.0.0", "end": "10.0.0.7"}])
    values = ipam.pool_addresses(subnet, 0, None, 100)
    assert [str(ipaddress.ip_address(v)) for v in values] == ["10.0.0.1", "10.0.0.2", "10.0.0.4", "10.0.0.5",
                                                              "10.0.0.6"]
    assert len(ipam.pool_addresses(subnet, 0, None, 2)) == 2


def test_pool_addresses_from_a_start_to_a_stop_across_pools() -> None:
    subnet = models.Subnet(cidr="10.0.0.0/24", gateway_ip="10.0.0.1",
                           allocation_pools=[{"start": "10.0.0.50", "end": "10.0.0.52"},
                                             {"start": "10.0.0.10", "end": "10.0.0.12"}])
    def text(values: list[int]) -> list[str]:
        return [str(ipaddress.ip_address(v)) for v in values]
    start, stop = int(ipaddress.ip_address("10.0.0.11")), int(ipaddress.ip_address("10.0.0.51"))
    assert text(ipam.pool_addresses(subnet, start, None, 100)) == ["10.0.0.11", "10.0.0.12", "10.0.0.50",
                                                                   "10.0.0.51", "10.0.0.52"]
    assert text(ipam.pool_addresses(subnet, 0, stop, 100)) == ["10.0.0.10", "10.0.0.11", "10.0.0.12", "10.0.0.50"]


def test_retrying_runs_a_deadlocked_transaction_again(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'r.sqlite'}")
    calls: list[int] = []

    def deadlocked_once(session: Any) -> str:
        calls.append(1)
        if len(calls) == 1:
            raise sa.exc.OperationalError("INSERT", {}, Exception(1213, "Deadlock found when trying to get lock"))
        return "done"

    assert ipam.retrying(db, deadlocked_once) == "done" and len(calls) == 2

    def broken(session: Any) -> None:
        raise sa.exc.OperationalError("INSERT", {}, Exception(1146, "Table doesn't exist"))

    with pytest.raises(sa.exc.OperationalError):
        ipam.retrying(db, broken)
    db.dispose()



def test_a_write_lock_not_had_in_time_is_retried(tmp_path: Path) -> None:
    """SQLite: another writer holds the lock past the busy timeout; the transaction runs again."""
    path = tmp_path / "locked.sqlite"
    db = Database(f"sqlite:///{path}")
    with db.engine.connect():  # made (in WAL mode) before anyone holds its lock
        pass
    holder = sqlite3.connect(path)
    holder.execute("BEGIN IMMEDIATE")
    calls: list[int] = []

    def write(session: Any) -> str:
        calls.append(1)
        session.connection().exec_driver_sql("PRAGMA busy_timeout=50")
        if len(calls) == 2:
            holder.rollback()  # the other writer is done by the second try
        ipam.open_write_transaction(session)
        return "written"

    assert ipam.retrying(db, write) == "written" and len(calls) == 2
    holder.close()
    db.dispose()

# -- allocation in a database ----------------------------------------------------------------------------------


def _in_pools(address: str, pools: list[dict[str, str]]) -> bool:
    value = ipaddress.ip_address(address)
    return any(ipaddress.ip_address(pool["start"]) <= value <= ipaddress.ip_address(pool["end"])
               for pool in pools if ipaddress.ip_address(pool["start"]).version == value.version)


class Store:
    """An in-process SQLite database holding one network and its subnets."""

    def __init__(self, path: Path) -> None:
        self.db = Database(f"sqlite:///{path}")
        models.Base.metadata.create_all(self.db.engine)
        self.network = models.Network(id=models.new_id(), project_id="p", name="n")
        with self.db.transaction() as session:
            session.add(self.network)
        self._macs = 0

    def subnet(self, cidr: str, *, gateway_ip: str | None = None, pools: list[dict[str, str]] | None = None,
               ip_version: int = 4, mode: str | None = None) -> models.Subnet:
        net = ipaddress.ip_network(cidr)
        subnet = models.Subnet(
            id=models.new_id(), project_id="p", network_id=self.network.id, ip_version=ip_version, cidr=cidr,
            gateway_ip=gateway_ip, ipv6_address_mode=mode, ipv6_ra_mode=mode,
            allocation_pools=pools if pools is not None else ipam.default_pools(net, gateway_ip))
        with self.db.transaction() as session:
            session.add(subnet)
        return subnet

    def port(self, session: Any, mac: str | None = None) -> models.Port:
        self._macs += 1
        port = models.Port(id=models.new_id(), project_id="p", network_id=self.network.id,
                           mac_address=mac or f"fa:16:3e:00:{self._macs >> 8:02x}:{self._macs & 255:02x}")
        session.add(port)
        session.flush()
        return port

    def allocate(self, fixed_ips: list[dict[str, str]] | None = None,
                 mac: str | None = None) -> tuple[str, list[tuple[str, str]]]:
        with self.db.transaction() as session:
            port = self.port(session, mac)
            return port.id, ipam.allocate(session, network=self.network, port=port, fixed_ips=fixed_ips)

    def release(self, port_id: str) -> None:
        with self.db.transaction() as session:
            ipam.release(session, port_id)

    def held(self) -> set[tuple[str, str]]:
        with self.db.transaction() as session:
            return {(a.subnet_id, a.ip_address) for a in session.scalars(sa.select(models.IPAllocation))}


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = Store(tmp_path / "ipam.sqlite")
    yield s
    s.db.dispose()


def test_default_allocation_takes_one_ipv4_address_and_every_slaac_one(store: Store) -> None:
    full = store.subnet("10.0.0.0/30", gateway_ip="10.0.0.1", pools=[{"start": "10.0.0.2", "end": "10.0.0.2"}])
    v4 = store.subnet("10.1.0.0/24", gateway_ip="10.1.0.1")
    slaac = store.subnet("2001:db8::/64", ip_version=6, gateway_ip="2001:db8::1", mode="slaac")
    stateful = store.subnet("fd00::/120", ip_version=6, gateway_ip="fd00::1", mode="dhcpv6-stateful")
    _, first = store.allocate(mac="fa:16:3e:11:22:33")
    assert {s for s, _ in first} == {full.id, slaac.id, stateful.id}
    assert (slaac.id, "2001:db8::f816:3eff:fe11:2233") in first
    # The first IPv4 subnet is full now: the next port gets its address from the second.
    _, second = store.allocate()
    assert {s for s, _ in second} == {v4.id, slaac.id, stateful.id}


def test_requested_addresses(store: Store) -> None:
    subnet = store.subnet("10.0.0.0/24", gateway_ip="10.0.0.1")
    _, taken = store.allocate([{"ip_address": "10.0.0.77"}])
    assert taken == [(subnet.id, "10.0.0.77")]
    with pytest.raises(IpAddressInUse):
        store.allocate([{"subnet_id": subnet.id, "ip_address": "10.0.0.77"}])
    with pytest.raises(ipam.InvalidIpForSubnet):
        store.allocate([{"subnet_id": subnet.id, "ip_address": "10.0.1.77"}])
    with pytest.raises(ipam.InvalidIpForNetwork):
        store.allocate([{"ip_address": "10.0.0.255"}])
    # The failed requests held nothing.
    assert store.held() == {(subnet.id, "10.0.0.77")}


def test_a_full_subnet_raises_and_a_released_address_is_given_again(store: Store) -> None:
    subnet = store.subnet("10.0.0.0/29", gateway_ip="10.0.0.1")
    ports = [store.allocate()[0] for _ in range(5)]
    assert {ip for _, ip in store.held()} == {f"10.0.0.{i}" for i in range(2, 7)}
    with pytest.raises(IpAddressGenerationFailure):
        store.allocate()
    with pytest.raises(IpAddressGenerationFailure):
        store.allocate([{"subnet_id": subnet.id}])
    store.release(ports[2])
    freed = {f"10.0.0.{i}" for i in range(2, 7)} - {ip for _, ip in store.held()}
    assert store.allocate()[1] == [(subnet.id, freed.pop())]


def test_addresses_go_out_in_order_and_released_ones_come_round_again(store: Store,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ipam, "_SPREAD", 1)  # no random pick among the lowest free: the order shows
    subnet = store.subnet("10.0.0.0/24", gateway_ip="10.0.0.1", pools=[{"start": "10.0.0.2", "end": "10.0.0.151"}])
    ports = {taken[0][1]: port_id for port_id, taken in (store.allocate() for _ in range(100))}
    assert set(ports) == {f"10.0.0.{i}" for i in range(2, 102)}
    store.release(ports["10.0.0.10"])
    # The search goes on from where the last one found a free address: the released one waits.
    assert store.allocate()[1] == [(subnet.id, "10.0.0.102")]
    # A new process (no hint) searches from the pools' start, a window at a time.
    ipam._search_from.clear()
    assert store.allocate()[1] == [(subnet.id, "10.0.0.10")]
    assert [store.allocate()[1][0][1] for _ in range(49)] == [f"10.0.0.{i}" for i in range(103, 152)]
    # Past the pools' end the search starts over and finds what was released anywhere.
    store.release(ports["10.0.0.50"])
    assert store.allocate()[1] == [(subnet.id, "10.0.0.50")]
    with pytest.raises(IpAddressGenerationFailure):
        store.allocate()


def _pools_and_gateway(draw: Any) -> tuple[list[dict[str, str]], str | None]:
    """1-3 non-overlapping pools inside 10.0.0.0/28's hosts (.1-.14) and a gateway outside them (or none)."""
    points = sorted(draw(st.sets(st.integers(1, 14), min_size=1, max_size=6)))
    pools, i = [], 0
    while i < len(points):
        start = points[i]
        end = points[i + 1] if i + 1 < len(points) and draw(st.booleans()) else start
        pools.append((start, end))
        i += 2 if end != start else 1
    inside = {v for a, b in pools for v in range(a, b + 1)}
    outside = [v for v in range(1, 15) if v not in inside]
    gateway = draw(st.sampled_from([None, *outside]))
    return ([{"start": f"10.0.0.{a}", "end": f"10.0.0.{b}"} for a, b in pools],
            None if gateway is None else f"10.0.0.{gateway}")


pools_and_gateway = st.composite(_pools_and_gateway)()
operations = st.lists(st.one_of(st.just(("allocate", 0)), st.tuples(st.just("release"), st.integers(0, 20))),
                      min_size=1, max_size=40)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(layout=pools_and_gateway, steps=operations)
def test_allocation_never_gives_an_address_twice_or_outside_its_pools(
        tmp_path_factory: pytest.TempPathFactory, layout: tuple[list[dict[str, str]], str | None],
        steps: list[tuple[str, int]]) -> None:
    pools, gateway = layout
    ipam.validate_pools(ipaddress.ip_network("10.0.0.0/28"), pools)  # the strategy only makes valid layouts
    store = Store(tmp_path_factory.mktemp("ipam") / "db.sqlite")
    try:
        subnet = store.subnet("10.0.0.0/28", gateway_ip=gateway, pools=pools)
        capacity = sum(int(ipaddress.ip_address(p["end"])) - int(ipaddress.ip_address(p["start"])) + 1
                       for p in pools)
        held: dict[str, str] = {}  # port id -> address
        for action, index in steps:
            if action == "release":
                if held:
                    port_id = sorted(held)[index % len(held)]
                    store.release(port_id)
                    del held[port_id]
                continue
            if len(held) == capacity:
                with pytest.raises(IpAddressGenerationFailure):
                    store.allocate()
                continue
            port_id, taken = store.allocate()
            assert [s for s, _ in taken] == [subnet.id]
            address = taken[0][1]
            assert address not in held.values(), (address, held)
            assert _in_pools(address, pools) and address != gateway
            assert address not in ("10.0.0.0", "10.0.0.15")
            held[port_id] = address
        assert {ip for _, ip in store.held()} == set(held.values())
    finally:
        store.db.dispose()
