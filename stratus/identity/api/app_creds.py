"""Placeholder: filled in by the app_creds work."""

from fastapi import APIRouter

router = APIRouter(tags=["app_creds"])
