"""The secret that the metadata proxies (network data plane) and the metadata service (compute)
share: the proxy signs the instance id it vouches for, the service checks that signature. Both sides
of that contract live here so that neither service imports the other."""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from pathlib import Path

from stratus.core.config import Config

SECRET_FILE = "metadata-secret"


def proxy_signature(secret: str, instance_id: str) -> str:
    """What the metadata proxy puts in X-Instance-ID-Signature for `instance_id`."""
    return hmac.new(secret.encode(), instance_id.encode(), hashlib.sha256).hexdigest()


def shared_secret(config: Config) -> str:
    """The proxy signing secret: the configured one, else the one kept in STATE_DIR/metadata-secret
    (made on first use, readable by its owner only)."""
    if config.compute.metadata_shared_secret:
        return config.compute.metadata_shared_secret
    path = Path(config.server.state_dir) / SECRET_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        if path.stat().st_mode & 0o077:
            path.chmod(0o600)
        value = path.read_text().strip()
        if not value:
            raise RuntimeError(f"{path} is empty; delete it to have a new metadata secret made") from None
        return value
    value = secrets.token_hex(32)
    with os.fdopen(fd, "w") as handle:
        handle.write(value + "\n")
    return value
