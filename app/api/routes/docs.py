"""GET /docs: Swagger UI with its files served by the API itself, so the page works offline.

The files come from the fastapi-offline package. Only the three the page loads are served: its static folder also
holds ReDoc, whose bundle loads a logo from an outside host, so Memora has no /redoc.
"""

from __future__ import annotations

from pathlib import Path

import fastapi_offline
from fastapi import APIRouter, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import FileResponse, HTMLResponse

from app.auth.rules import PUBLIC
from app.errors import NotFoundError

DOCS_URL = "/docs"
_ASSETS_URL = f"{DOCS_URL}/assets"
_ASSETS_DIR = Path(fastapi_offline.__file__).parent / "static"
_ASSETS = {"swagger-ui-bundle.js": "text/javascript", "swagger-ui.css": "text/css", "favicon.png": "image/png"}

router = APIRouter(include_in_schema=False)


@router.get(DOCS_URL, dependencies=[PUBLIC])
def swagger_ui(request: Request) -> HTMLResponse:
    """The interactive API documentation."""
    root = request.scope.get("root_path", "")
    return get_swagger_ui_html(
        openapi_url=root + request.app.openapi_url,
        title=f"{request.app.title} - Swagger UI",
        swagger_js_url=f"{root}{_ASSETS_URL}/swagger-ui-bundle.js",
        swagger_css_url=f"{root}{_ASSETS_URL}/swagger-ui.css",
        swagger_favicon_url=f"{root}{_ASSETS_URL}/favicon.png",
        # Swagger UI would otherwise send the spec's URL to validator.swagger.io for a badge.
        swagger_ui_parameters={"validatorUrl": None},
    )


@router.get(_ASSETS_URL + "/{name}", dependencies=[PUBLIC])
def swagger_ui_asset(name: str) -> FileResponse:
    """One of Swagger UI's files."""
    if name not in _ASSETS:
        raise NotFoundError(f"no such file: {name}")
    return FileResponse(_ASSETS_DIR / name, media_type=_ASSETS[name])
