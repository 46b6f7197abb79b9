"""The builds.sr.ht jobs API: `/api/jobs…` (routes.py), in sr.ht's shapes and errors."""

from circus.server.srht.routes import add_routes as add_routes
