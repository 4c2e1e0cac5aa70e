"""Placeholder: filled in by the groups work."""

from fastapi import APIRouter

router = APIRouter(tags=["groups"])
