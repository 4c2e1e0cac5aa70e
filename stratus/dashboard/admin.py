"""Admin pages (admin role only; members get 403): hypervisors with usage, compute services,
flavors, projects and users, every project's instances."""

from __future__ import annotations

import asyncio

from starlette.requests import Request
from starlette.responses import Response

from stratus.dashboard import web
from stratus.dashboard.cloud import ApiError, Cloud
from stratus.dashboard.instances import image_names, list_servers, rows
from stratus.dashboard.web import Form


async def hypervisors(request: Request, cloud: Cloud) -> Response:
    body = await cloud.get("compute", "/os-hypervisors/detail")
    items = sorted(body.get("hypervisors", []), key=lambda h: h.get("hypervisor_hostname", ""))
    return web.render(request, "admin_hypervisors.html", cloud.session, title="Hypervisors", hypervisors=items)


async def services(request: Request, cloud: Cloud) -> Response:
    body = await cloud.get("compute", "/os-services")
    return web.render(request, "admin_services.html", cloud.session, title="Compute services",
                      services=sorted(body.get("services", []), key=lambda s: (s["binary"], s["host"])))


async def flavors(request: Request, cloud: Cloud) -> Response:
    body = await cloud.get("compute", "/flavors/detail", is_public="None")
    return web.render(request, "admin_flavors.html", cloud.session, title="Flavors",
                      flavors=sorted(body.get("flavors", []), key=lambda f: (f["vcpus"], f["ram"], f["name"])))


def _whole(form: Form, name: str, label: str, low: int) -> int:
    value = form.get(name)
    if not value.isdigit() or int(value) < low:
        raise ApiError(400, f"{label} must be a whole number of at least {low}.")
    return int(value)


async def create_flavor(request: Request, cloud: Cloud, form: Form) -> str:
    name = form.require("name", "Flavor name")
    flavor = {"name": name, "vcpus": _whole(form, "vcpus", "vCPUs", 1), "ram": _whole(form, "ram", "RAM", 1),
              "disk": _whole(form, "disk", "Disk", 0), "os-flavor-access:is_public": form.get("public") == "on"}
    await cloud.post("compute", "/flavors", {"flavor": flavor})
    return f"Flavor {name} created."


async def delete_flavor(request: Request, cloud: Cloud, form: Form) -> str:
    await cloud.delete("compute", f"/flavors/{request.path_params['flavor_id']}")
    return "Flavor deleted."


async def identity(request: Request, cloud: Cloud) -> Response:
    projects, users = await asyncio.gather(cloud.get("identity", "/projects"), cloud.get("identity", "/users"))
    return web.render(request, "admin_identity.html", cloud.session, title="Projects and users",
                      projects=sorted(projects.get("projects", []), key=lambda p: p["name"]),
                      users=sorted(users.get("users", []), key=lambda u: u["name"]))


async def instances(request: Request, cloud: Cloud) -> Response:
    servers, images, projects = await asyncio.gather(list_servers(cloud, all_tenants=1), image_names(cloud),
                                                     cloud.get("identity", "/projects"))
    names = {p["id"]: p["name"] for p in projects.get("projects", [])}
    return web.render(request, "admin_instances.html", cloud.session, title="All instances",
                      instances=rows(servers, images), project_names=names)


routes = [
    web.page("/admin/hypervisors", hypervisors, admin=True),
    web.page("/admin/services", services, admin=True),
    web.page("/admin/flavors", flavors, admin=True),
    web.action("/admin/flavors/create", create_flavor, fallback="/admin/flavors", admin=True),
    web.action("/admin/flavors/{flavor_id}/delete", delete_flavor, fallback="/admin/flavors", admin=True),
    web.page("/admin/identity", identity, admin=True),
    web.page("/admin/instances", instances, admin=True),
]
