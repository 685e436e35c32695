"""The portal's pages (portal-pages owns this module): a list of Starlette `Route`s, each
endpoint wrapped by `infra.portal.access.page(*roles)` (create_app refuses any other)."""

from __future__ import annotations

from starlette.routing import BaseRoute

ROUTES: list[BaseRoute] = []
