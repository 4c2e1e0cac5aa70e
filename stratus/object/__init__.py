"""Object storage (Swift v1 compatible): rings, storage nodes and their daemons, the proxy and S3."""
