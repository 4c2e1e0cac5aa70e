"""One controller per Swift resource (account, container, object) over a shared base."""
