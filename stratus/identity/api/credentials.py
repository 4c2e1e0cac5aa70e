"""Placeholder: filled in by the credentials work."""

from fastapi import APIRouter

router = APIRouter(tags=["credentials"])
