"""Webhooks in: `POST /api/v1/webhooks/{project_id}/{forge}` (routes.py)."""

from circus.server.webhooks.routes import add_routes as add_routes
from circus.server.webhooks.routes import setup as setup
