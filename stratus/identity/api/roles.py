"""Placeholder: filled in by the roles work."""

from fastapi import APIRouter

router = APIRouter(tags=["roles"])
