"""Images: list, upload with progress (the browser's bytes stream on to the image API), edit, delete."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from stratus.dashboard import web
from stratus.dashboard.cloud import ApiError, Cloud
from stratus.dashboard.web import Form

DISK_FORMATS = ("qcow2", "raw", "vmdk", "vdi", "vhd", "vhdx", "iso", "ami", "aki", "ari")
CONTAINER_FORMATS = ("bare", "ovf", "ova", "ami", "aki", "ari", "docker")
VISIBILITIES = ("private", "shared", "community", "public")


async def index(request: Request, cloud: Cloud) -> Response:
    body = await cloud.get("image", "/v2/images", limit=1000)
    images = sorted(body.get("images", []), key=lambda i: (i.get("name") or "").lower())
    return web.render(request, "images.html", cloud.session, title="Images", images=images,
                      disk_formats=DISK_FORMATS, container_formats=CONTAINER_FORMATS, visibilities=VISIBILITIES)


async def upload(request: Request, cloud: Cloud) -> Response:
    """Create the image record, then stream the request body into its data (never held whole)."""
    q = request.query_params
    name = q.get("name", "").strip()
    if not name:
        raise ApiError(400, "Image name is required.")
    disk_format, container_format = q.get("disk_format", "raw"), q.get("container_format", "bare")
    if disk_format not in DISK_FORMATS or container_format not in CONTAINER_FORMATS:
        raise ApiError(400, "Unknown disk or container format.")
    meta = {"name": name, "disk_format": disk_format, "container_format": container_format,
            "visibility": q.get("visibility", "private") if q.get("visibility") in VISIBILITIES else "private"}
    image = await cloud.post("image", "/v2/images", meta)
    headers = {"Content-Type": "application/octet-stream"}
    if request.headers.get("content-length"):
        headers["Content-Length"] = request.headers["content-length"]
    try:
        await cloud.stream_in("image", f"/v2/images/{image['id']}/file", request.stream(), headers)
    except ApiError:
        await cloud.delete("image", f"/v2/images/{image['id']}", ok=(404,))
        raise
    return JSONResponse({"id": image["id"], "next": "/project/images"}, status_code=201)


async def edit(request: Request, cloud: Cloud, form: Form) -> str:
    image_id = request.path_params["image_id"]
    ops: list[dict[str, object]] = [{"op": "replace", "path": "/name", "value": form.require("name", "Name")}]
    if form.get("visibility") in VISIBILITIES:
        ops.append({"op": "replace", "path": "/visibility", "value": form.get("visibility")})
    ops.append({"op": "replace", "path": "/protected", "value": form.get("protected") == "on"})
    await cloud.request("PATCH", "image", f"/v2/images/{image_id}", json=ops,
                        headers={"Content-Type": "application/openstack-images-v2.1-json-patch"})
    return "Image updated."


async def delete(request: Request, cloud: Cloud, form: Form) -> str:
    await cloud.delete("image", f"/v2/images/{request.path_params['image_id']}")
    return "Image deleted."


routes = [
    web.page("/project/images", index),
    web.upload("/project/images/upload", upload),
    web.action("/project/images/{image_id}/edit", edit, fallback="/project/images"),
    web.action("/project/images/{image_id}/delete", delete, fallback="/project/images"),
]
