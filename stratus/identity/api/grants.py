"""Placeholder: filled in by the grants work."""

from fastapi import APIRouter

router = APIRouter(tags=["grants"])
