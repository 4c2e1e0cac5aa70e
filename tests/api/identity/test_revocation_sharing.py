"""Revocations written by one process are honoured by another that reads them back."""

from __future__ import annotations

from stratus.identity.revocation import RevocationList
from tests.conftest import ADMIN_PASSWORD, IdentityHarness


def test_other_process_sees_revocation_within_the_same_second(identity: IdentityHarness) -> None:
    svc = identity.service
    token = identity.token("admin", ADMIN_PASSWORD, "admin")
    payload = svc.tokens.decode(token)
    assert payload is not None
    # A second list over the same database stands for another API process.
    other = RevocationList(svc.db, refresh=0.0, token_lifetime=svc.settings.token_expiration)
    other.load()
    assert not other.is_revoked(payload)
    revoked = identity.client.delete("/v3/auth/tokens",
                                     headers={**identity.as_admin(), "X-Subject-Token": token})
    assert revoked.status_code == 204
    other.load()
    # Microsecond timestamps survive the round trip on every engine (MariaDB needs DATETIME(6)).
    assert other.is_revoked(payload)
    fresh = svc.tokens.decode(identity.token("admin", ADMIN_PASSWORD, "admin"))
    assert fresh is not None and not other.is_revoked(fresh)


def test_user_revocation_spares_tokens_issued_right_after(identity: IdentityHarness) -> None:
    svc = identity.service
    before = svc.tokens.decode(identity.token("admin", ADMIN_PASSWORD, "admin"))
    assert before is not None
    with svc.write() as session:
        svc.revocations.revoke(session, user_id=before.user_id)
    after = svc.tokens.decode(identity.token("admin", ADMIN_PASSWORD, "admin"))
    assert after is not None
    other = RevocationList(svc.db, refresh=0.0, token_lifetime=svc.settings.token_expiration)
    other.load()
    assert other.is_revoked(before)
    assert not other.is_revoked(after)
