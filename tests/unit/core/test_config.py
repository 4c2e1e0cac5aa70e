"""Configuration: TOML file, environment overrides, refusal of bad values naming the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from stratus.core.config import ConfigError, load


def test_defaults_follow_openstack_ports(tmp_path: Path) -> None:
    cfg = load(state_dir=tmp_path, environ={})
    assert cfg.identity.port == 5000
    assert cfg.bus.url == "memory://"
    assert cfg.database_url("identity") == f"sqlite:///{tmp_path.resolve() / 'identity.sqlite'}"


def test_file_then_environment(tmp_path: Path) -> None:
    (tmp_path / "stratus.toml").write_text('[identity]\nport = 5500\ntoken_expiration = 60\n'
                                           '[database]\nurl = "postgresql://x@h/db"\n')
    cfg = load(state_dir=tmp_path, environ={"STRATUS_IDENTITY__PORT": "5600", "UNRELATED": "1"})
    assert cfg.identity.port == 5600
    assert cfg.identity.token_expiration == 60
    assert cfg.database_url("identity") == "postgresql://x@h/db"


@pytest.mark.parametrize(("text", "environ", "key"), [
    ("[identity]\nport = 70000\n", {}, "identity.port"),
    ("[identity]\nbcrypt_rounds = 2\n", {}, "identity.bcrypt_rounds"),
    ("", {"STRATUS_IDENTITY__PORT": "many"}, "identity.port"),
    ("[identity]\nno_such_key = 1\n", {}, "identity.no_such_key"),
    ("[nosuchsection]\nx = 1\n", {}, "nosuchsection"),
])
def test_bad_values_are_refused_naming_the_key(tmp_path: Path, text: str, environ: dict, key: str) -> None:
    path = tmp_path / "stratus.toml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        load(path, environ=environ)


def test_broken_toml_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "stratus.toml"
    path.write_text("[identity\n")
    with pytest.raises(ConfigError, match="stratus.toml"):
        load(path, environ={})
