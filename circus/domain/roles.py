"""Roles and what they permit: the one table every front end and service reads.

A role is a set of permissions (the seed's "Roles"); `admin` holds them all. The
operations on projects and jobsets name the permission they need here too, so a change
means the same on /api/v1, on Hydra's URLs and in the dashboard.
"""

from __future__ import annotations

CREATE_PROJECT = "create-project"
CREATE_JOBSET = "create-jobset"
ADMIN = "administer"
TRIGGER = "trigger-evaluation"
CANCEL = "cancel-build"
RESTART = "restart-build"
BUMP = "bump-build"
# builds.sr.ht's `jobs:write`: running a manifest is running code of one's own, as much
# as a project of one's own is, so it goes with creating projects.
SUBMIT_JOB = "submit-job"
PERMISSIONS = frozenset({CREATE_PROJECT, CREATE_JOBSET, ADMIN, TRIGGER, CANCEL, RESTART, BUMP,
                         SUBMIT_JOB})

ROLE_PERMISSIONS: dict[str, frozenset[str]] = {
    "admin": PERMISSIONS,
    "read-only": frozenset(),
    "create-projects": frozenset({CREATE_PROJECT, CREATE_JOBSET, SUBMIT_JOB}),
    "eval-jobset": frozenset({TRIGGER}),
    "cancel-build": frozenset({CANCEL}),
    "restart-jobs": frozenset({RESTART}),
    "bump-to-front": frozenset({BUMP}),
}
ROLES = tuple(ROLE_PERMISSIONS)

# The permission each project/jobset operation needs (services/projects.py asks here).
# Creating is open to `create-projects`; changing or deleting what exists is an admin's,
# as is anything that adds jobset inputs or points a project at another repository.
OPERATIONS: dict[str, str] = {
    "create-project": CREATE_PROJECT,
    "update-project": ADMIN,
    "delete-project": ADMIN,
    "create-jobset": CREATE_JOBSET,
    "update-jobset": ADMIN,
    "delete-jobset": ADMIN,
    # A webhook's secret lets its holder trigger evaluations; notification settings hold
    # forge tokens.
    "manage-webhooks": ADMIN,
    "manage-notifications": ADMIN,
    # Builders run every build sent to them, and are reached with the runners' SSH keys.
    "manage-builders": ADMIN,
}


def permits(role: str, permission: str) -> bool:
    return permission in ROLE_PERMISSIONS.get(role, frozenset())
