"""`stratus up` settles `auto` for the hypervisor driver and the network data plane: real ones
wherever this machine can run them, simulated ones otherwise, and it says so."""

from __future__ import annotations

import pytest

from stratus import cli
from stratus.core.config import Config


def _choose(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], *, found: set[str],
            root: bool) -> tuple[Config, str]:
    monkeypatch.setattr(cli.shutil, "which", lambda tool: f"/usr/bin/{tool}" if tool in found else None)
    monkeypatch.setattr(cli.os, "geteuid", lambda: 0 if root else 1000)
    cfg = Config()
    assert (cfg.compute.driver, cfg.network.agent_dataplane) == ("auto", "auto")
    cli._choose_backends(cfg)
    return cfg, capsys.readouterr().out


def test_real_vms_and_networks_where_the_machine_can_run_them(monkeypatch: pytest.MonkeyPatch,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    cfg, said = _choose(monkeypatch, capsys, found={*cli.QEMU_TOOLS, *cli.LINUX_NETWORK_TOOLS}, root=True)
    assert (cfg.compute.driver, cfg.network.agent_dataplane) == ("qemu", "linux")
    assert said == ""


def test_without_qemu_the_fake_driver_and_a_plain_warning(monkeypatch: pytest.MonkeyPatch,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    cfg, said = _choose(monkeypatch, capsys, found=set(cli.LINUX_NETWORK_TOOLS), root=True)
    assert (cfg.compute.driver, cfg.network.agent_dataplane) == ("fake", "linux")
    assert "NOT real VMs" in said and "qemu-system-x86_64" in said


def test_not_root_the_noop_data_plane_and_a_plain_warning(monkeypatch: pytest.MonkeyPatch,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    cfg, said = _choose(monkeypatch, capsys, found={*cli.QEMU_TOOLS, *cli.LINUX_NETWORK_TOOLS}, root=False)
    assert (cfg.compute.driver, cfg.network.agent_dataplane) == ("qemu", "noop")
    assert "not running as root" in said and "NOT built" in said


def test_an_explicit_choice_is_kept(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(cli.shutil, "which", lambda tool: None)
    cfg = Config()
    cfg.compute.driver, cfg.network.agent_dataplane = "qemu", "linux"
    cli._choose_backends(cfg)
    assert (cfg.compute.driver, cfg.network.agent_dataplane) == ("qemu", "linux")
    assert capsys.readouterr().out == ""
