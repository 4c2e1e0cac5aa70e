"""The proxy built from the configuration's `[object]` section, for `stratus up` and `stratus serve object-proxy`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from stratus.object.proxy.app import ProxyApp, create_proxy_app
from stratus.object.proxy.auth import AuthSettings
from stratus.object.proxy.server import ProxySettings


def settings_from_config(cfg: Any, ring_dir: Path | None = None) -> ProxySettings:
    """ProxySettings from `cfg.object` (keys missing there keep their defaults)."""
    section = cfg.object
    defaults = ProxySettings(ring_dir=Path("."))

    def pick(name: str, default: Any) -> Any:
        return getattr(section, name, default)

    ring = ring_dir or Path(pick("ring_dir", None) or cfg.server.state_dir / "rings")
    auth = AuthSettings(
        operator_roles=tuple(pick("operator_roles", ["admin", "member"])),
        reseller_admin_role=pick("reseller_admin_role", "ResellerAdmin"),
        tempauth_users=list(pick("tempauth_users", [])),
        tempauth_secret=pick("tempauth_secret", ""),
    )
    return ProxySettings(
        ring_dir=Path(ring), auth=auth,
        connect_timeout=pick("conn_timeout", defaults.connect_timeout),
        node_timeout=pick("node_timeout", defaults.node_timeout),
        info_cache_ttl=pick("info_cache_ttl", defaults.info_cache_ttl),
        cors_allow_origin=list(pick("cors_allow_origin", [])),
        s3_domain=pick("s3_domain", ""),
        identity_url=cfg.auth.identity_url or f"http://127.0.0.1:{cfg.identity.port}",
    )


def create_from_config(cfg: Any, validator: Any, ring_dir: Path | None = None) -> ProxyApp:
    return create_proxy_app(settings_from_config(cfg, ring_dir), validator)
