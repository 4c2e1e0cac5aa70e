"""`GET /info`: the capabilities clients read (the swift CLI checks `slo` before a segmented upload)."""

from __future__ import annotations

from typing import Any

from stratus.object.proxy import bulk, large_objects, request, tempurl


def capabilities(tempauth: bool, s3: bool) -> dict[str, Any]:
    caps: dict[str, Any] = {
        "swift": {"version": "2.38.0", "strict_cors_mode": True, "policies": [{"name": "default", "default": True}],
                  "max_file_size": request.MAX_FILE_SIZE, "max_meta_name_length": request.MAX_META_NAME,
                  "max_meta_value_length": request.MAX_META_VALUE, "max_meta_count": request.MAX_META_COUNT,
                  "max_meta_overall_size": request.MAX_META_OVERALL,
                  "max_object_name_length": request.MAX_NAME_LENGTH,
                  "max_container_name_length": request.MAX_CONTAINER_NAME,
                  "container_listing_limit": request.CONTAINER_LISTING_LIMIT,
                  "account_listing_limit": request.ACCOUNT_LISTING_LIMIT, "max_header_size": 8192,
                  "extra_header_count": 0, "allow_account_management": False, "account_autocreate": True,
                  "valid_api_versions": ["v1", "v1.0"]},
        "slo": {"max_manifest_segments": large_objects.MAX_SEGMENTS,
                "max_manifest_size": large_objects.MAX_MANIFEST_BYTES, "min_segment_size": 1,
                "yield_frequency": 10, "allow_async_delete": False},
        "dlo": {"max_segments": large_objects.DLO_MAX_SEGMENTS},
        "tempurl": {"methods": list(tempurl.METHODS), "allowed_digests": sorted(tempurl.DIGESTS),
                    "incoming_remove_headers": ["x-timestamp"], "incoming_allow_headers": [],
                    "outgoing_remove_headers": ["x-object-meta-*"],
                    "outgoing_allow_headers": ["x-object-meta-public-*"]},
        "bulk_delete": {"max_deletes_per_request": bulk.MAX_DELETES, "max_failed_deletes": bulk.MAX_DELETES},
        "account_quotas": {}, "container_quotas": {},
        "object_versioning": {},
        "keystoneauth": {},
        "cors": {},
    }
    if tempauth:
        caps["tempauth"] = {"account_acls": False}
    if s3:
        caps["s3api"] = {"max_bucket_listing": 1000, "max_parts_listing": 1000, "max_upload_part_num": 10000,
                         "max_multi_delete_objects": 1000, "allow_multipart_uploads": True,
                         "min_segment_size": 5242880, "s3_acl": False}
    return caps
