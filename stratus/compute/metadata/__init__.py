"""The guest metadata service (Nova's metadata API): the OpenStack and EC2 formats that cloud-init
reads, served to the instance that asks and to no one else."""

from stratus.compute.metadata.app import create_metadata_app
from stratus.core.metadata_secret import proxy_signature, shared_secret

__all__ = ["create_metadata_app", "proxy_signature", "shared_secret"]
