"""Placeholder: filled in by the v2 work."""

from fastapi import APIRouter

router = APIRouter(tags=["v2"])
