"""The storage node servers: object, container and account, each a plain ASGI app."""
