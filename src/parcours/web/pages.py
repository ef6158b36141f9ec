"""Home and error pages (to be built)."""

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

router = APIRouter()


def error_page(request: Request, status: int, detail: str):
    return HTMLResponse(f"<h1>{status}</h1><p>{detail}</p>", status_code=status)
