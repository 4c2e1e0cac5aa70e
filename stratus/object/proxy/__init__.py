"""The Swift proxy: authentication, ACLs, large objects, versioning, tempurl and the S3 front,
over the account, container and object servers the rings name."""
