"""Where volumes live on a storage host: each backend behind the `Backend` interface."""
