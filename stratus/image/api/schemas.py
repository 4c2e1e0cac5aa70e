"""`/v2/schemas/*`: the JSON-schema documents clients read to validate bodies and to tell the base
attributes of an image from its custom properties (`additionalProperties` are strings)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends

from stratus.core.context import RequestContext
from stratus.image.api.deps import caller
from stratus.image.images import CONTAINER_FORMATS, DISK_FORMATS, STATUSES, VISIBILITIES

router = APIRouter(tags=["schemas"])

_UUID = "^([0-9a-fA-F]){8}-([0-9a-fA-F]){4}-([0-9a-fA-F]){4}-([0-9a-fA-F]){4}-([0-9a-fA-F]){12}$"
_TIME = {"type": "string", "readOnly": True, "format": "date-time"}


def _text(description: str, *, nullable: bool = True, read_only: bool = False, **extra: Any) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": ["null", "string"] if nullable else "string", "description": description}
    if read_only:
        schema["readOnly"] = True
    return {**schema, **extra}


def _enum(description: str, values: tuple[str, ...]) -> dict[str, Any]:
    return {"type": ["null", "string"], "description": description, "enum": [None, *values]}


# Common, documented properties: known to clients but not base attributes ("is_base": False).
_COMMON = {
    "kernel_id": _text("ID of an image stored in the image service that should be used as the kernel when "
                       "booting an AMI-style image.", pattern=_UUID, is_base=False),
    "ramdisk_id": _text("ID of an image stored in the image service that should be used as the ramdisk when "
                        "booting an AMI-style image.", pattern=_UUID, is_base=False),
    "instance_uuid": _text("Metadata that records which instance this image was created from, if any.",
                           is_base=False),
    "architecture": _text("CPU architecture the image needs (x86_64, aarch64, ...).", is_base=False),
    "os_distro": _text("Common name of the operating system distribution, in lower case.", is_base=False),
    "os_version": _text("Operating system version as given by the distributor.", is_base=False),
    "description": _text("A human-readable description of the image.", is_base=False),
}


def image_schema() -> dict[str, Any]:
    properties: dict[str, Any] = {
        "id": _text("An identifier for the image", nullable=False, pattern=_UUID),
        "name": _text("Descriptive name for the image", maxLength=255),
        "status": {"type": "string", "readOnly": True, "description": "Status of the image",
                   "enum": list(STATUSES)},
        "visibility": {"type": "string", "description": "Scope of image accessibility",
                       "enum": list(VISIBILITIES)},
        "protected": {"type": "boolean", "description": "If true, image will not be deletable."},
        "os_hidden": {"type": "boolean", "description": "If true, image will not appear in default image list "
                      "response."},
        "checksum": _text("md5 hash of image contents.", read_only=True, maxLength=32),
        "os_hash_algo": _text("Algorithm used to compute the secure hash (os_hash_value).", read_only=True,
                              maxLength=64),
        "os_hash_value": _text("Hexdigest of the image contents using the algorithm in os_hash_algo.",
                               read_only=True, maxLength=128),
        "owner": _text("Owner of the image", maxLength=255),
        "size": {"type": ["null", "integer"], "readOnly": True, "description": "Size of image file in bytes"},
        "virtual_size": {"type": ["null", "integer"], "readOnly": True,
                         "description": "Virtual size of image in bytes"},
        "container_format": _enum("Format of the container", CONTAINER_FORMATS),
        "disk_format": _enum("Format of the disk", DISK_FORMATS),
        "created_at": {**_TIME, "description": "Date and time of image registration"},
        "updated_at": {**_TIME, "description": "Date and time of the last image modification"},
        "tags": {"type": "array", "description": "List of strings related to the image",
                 "items": {"type": "string", "maxLength": 255}},
        "direct_url": _text("URL to access the image file kept in external store", nullable=False,
                            read_only=True),
        "min_ram": {"type": "integer", "minimum": 0, "description": "Amount of ram (in MB) required to boot image."},
        "min_disk": {"type": "integer", "minimum": 0,
                     "description": "Amount of disk space (in GB) required to boot image."},
        "self": {"type": "string", "readOnly": True, "description": "An image self url"},
        "file": {"type": "string", "readOnly": True, "description": "An image file url"},
        "schema": {"type": "string", "readOnly": True, "description": "An image schema url"},
        "locations": {"type": "array", "description": "A set of URLs to access the image file kept in external "
                      "store", "items": {"type": "object", "required": ["url", "metadata"], "properties": {
                          "url": {"type": "string", "maxLength": 255}, "metadata": {"type": "object"}}}},
        **_COMMON,
    }
    return {"name": "image", "properties": properties, "additionalProperties": {"type": "string"},
            "links": [{"rel": "self", "href": "{self}"}, {"rel": "enclosure", "href": "{file}"},
                      {"rel": "describedby", "href": "{schema}"}]}


def member_schema() -> dict[str, Any]:
    return {"name": "member", "properties": {
        "created_at": {"type": "string", "description": "Date and time of image member creation"},
        "image_id": {"type": "string", "description": "An identifier for the image", "pattern": _UUID},
        "member_id": {"type": "string", "description": "An identifier for the image member (tenantId)"},
        "schema": {"type": "string", "readOnly": True},
        "status": {"type": "string", "description": "The status of this image member",
                   "enum": ["pending", "accepted", "rejected"]},
        "updated_at": {"type": "string", "description": "Date and time of last modification of image member"},
    }}


def _collection(name: str, item: dict[str, Any], links: list[dict[str, str]]) -> dict[str, Any]:
    return {"name": name, "properties": {name: {"type": "array", "items": item},
                                         "schema": {"type": "string"}, **(
                                             {"first": {"type": "string"}, "next": {"type": "string"}}
                                             if name == "images" else {})},
            "links": links}


@router.get("/v2/schemas/image")
def show_image_schema(_ctx: RequestContext = Depends(caller)) -> dict[str, Any]:
    return image_schema()


@router.get("/v2/schemas/images")
def show_images_schema(_ctx: RequestContext = Depends(caller)) -> dict[str, Any]:
    return _collection("images", image_schema(), [{"rel": "first", "href": "{first}"},
                                                  {"rel": "next", "href": "{next}"},
                                                  {"rel": "describedby", "href": "{schema}"}])


@router.get("/v2/schemas/member")
def show_member_schema(_ctx: RequestContext = Depends(caller)) -> dict[str, Any]:
    return member_schema()


@router.get("/v2/schemas/members")
def show_members_schema(_ctx: RequestContext = Depends(caller)) -> dict[str, Any]:
    return _collection("members", member_schema(), [{"rel": "describedby", "href": "{schema}"}])
