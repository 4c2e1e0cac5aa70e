"""Where a login sends the browser next: a path on this site, never another host."""

from __future__ import annotations

from stratus.dashboard.auth import _safe_next


def test_login_next_is_only_ever_a_path_on_this_site() -> None:
    assert _safe_next("/project/instances?x=1") == "/project/instances?x=1"
    for hostile in ("//evil.example/", "/\\evil.example/", "https://evil.example/", "javascript:alert(1)", ""):
        assert _safe_next(hostile) == "/project/"
