"""`stratus bootstrap`: the Default domain, admin and service accounts, roles and the catalog.

Safe to run on every start: what exists is kept, endpoint URLs follow the current configuration.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.orm import Session

from stratus.identity import passwords
from stratus.identity.assignments import SYSTEM_ALL
from stratus.identity.models import (
    NO_DOMAIN,
    Assignment,
    Domain,
    Endpoint,
    ImpliedRole,
    Project,
    Region,
    Role,
    Service,
    User,
)
from stratus.identity.service import IdentityService

DEFAULT_DOMAIN = "default"
SERVICE_PROJECT = "service"
INTERFACES = ("public", "internal", "admin")


@dataclass(frozen=True)
class CatalogEntry:
    type: str
    name: str
    url: str
    description: str = ""


@dataclass
class BootstrapResult:
    admin_user_id: str
    admin_project_id: str
    # Set only when this run generated the admin password (it is shown once).
    generated_password: str | None = None


def _role(session: Session, name: str) -> Role:
    role = session.scalar(sa.select(Role).where(Role.name == name, Role.domain_id == NO_DOMAIN))
    if role is None:
        role = Role(name=name)
        session.add(role)
        session.flush()
    return role


def _imply(session: Session, prior: Role, implied: Role) -> None:
    if session.get(ImpliedRole, (prior.id, implied.id)) is None:
        session.add(ImpliedRole(prior_role_id=prior.id, implied_role_id=implied.id))


def _project(session: Session, name: str, description: str) -> Project:
    project = session.scalar(sa.select(Project).where(Project.domain_id == DEFAULT_DOMAIN, Project.name == name))
    if project is None:
        project = Project(name=name, domain_id=DEFAULT_DOMAIN, description=description)
        session.add(project)
        session.flush()
    return project


def _grant(session: Session, user: User, target_type: str, target_id: str, role: Role) -> None:
    key = ("user", user.id, target_type, target_id, role.id, False)
    if session.get(Assignment, key) is None:
        session.add(Assignment(actor_type="user", actor_id=user.id, target_type=target_type,
                               target_id=target_id, role_id=role.id, inherited=False))


def _user(session: Session, name: str, password: str, rounds: int, project: Project) -> tuple[User, bool]:
    """The user, created or with its password reset to `password`; says whether it was created."""
    user = session.scalar(sa.select(User).where(User.domain_id == DEFAULT_DOMAIN, User.name == name))
    if user is None:
        user = User(name=name, domain_id=DEFAULT_DOMAIN, default_project_id=project.id,
                    password_hash=passwords.hash_secret(password, rounds))
        session.add(user)
        session.flush()
        return user, True
    if password and not passwords.verify_secret(password, user.password_hash, rounds):
        user.password_hash = passwords.hash_secret(password, rounds)
    return user, False


def _catalog(session: Session, region: str, entry: CatalogEntry) -> None:
    service = session.scalar(sa.select(Service).where(Service.type == entry.type, Service.name == entry.name))
    if service is None:
        service = Service(type=entry.type, name=entry.name, description=entry.description)
        session.add(service)
        session.flush()
    existing = {ep.interface: ep for ep in session.scalars(
        sa.select(Endpoint).where(Endpoint.service_id == service.id, Endpoint.region_id == region))}
    for interface in INTERFACES:
        endpoint = existing.get(interface)
        if endpoint is None:
            session.add(Endpoint(service_id=service.id, interface=interface, url=entry.url, region_id=region))
        elif endpoint.url != entry.url:
            endpoint.url = entry.url


def bootstrap(svc: IdentityService, catalog: list[CatalogEntry], service_users: list[str]) -> BootstrapResult:
    cfg = svc.config.bootstrap
    rounds = svc.settings.bcrypt_rounds
    generated = None
    with svc.write() as session:
        if session.get(Domain, DEFAULT_DOMAIN) is None:
            session.add(Domain(id=DEFAULT_DOMAIN, name="Default", description="The default domain"))
            session.flush()
        reader, member, admin, service_role = (_role(session, n) for n in ("reader", "member", "admin", "service"))
        _imply(session, admin, member)
        _imply(session, member, reader)
        admin_project = _project(session, cfg.admin_project, "Bootstrap project for the cloud's administrators")
        service_project = _project(session, SERVICE_PROJECT, "Project of the services' own users")
        password = cfg.admin_password
        exists = session.scalar(sa.select(User.id).where(User.domain_id == DEFAULT_DOMAIN,
                                                         User.name == cfg.admin_user))
        if not password and not exists:
            password = generated = secrets.token_urlsafe(18)
        admin_user, _ = _user(session, cfg.admin_user, password, rounds, admin_project)
        _grant(session, admin_user, "project", admin_project.id, admin)
        _grant(session, admin_user, "system", SYSTEM_ALL, admin)
        _grant(session, admin_user, "domain", DEFAULT_DOMAIN, admin)
        service_password = cfg.service_password or password
        for name in service_users:
            if service_password:
                user, _ = _user(session, name, service_password, rounds, service_project)
                _grant(session, user, "project", service_project.id, admin)
                _grant(session, user, "project", service_project.id, service_role)
        if session.get(Region, cfg.region) is None:
            session.add(Region(id=cfg.region, description=""))
            session.flush()
        for entry in catalog:
            _catalog(session, cfg.region, entry)
        return BootstrapResult(admin_user.id, admin_project.id, generated)
