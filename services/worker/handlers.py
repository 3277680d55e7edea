"""Job types by name: the built-in ones plus those of configured plugin modules."""

from __future__ import annotations

import importlib

from .context import Handler
from .jobs.commit import file_removal, manifest_cleaning, trash_maintenance
from .jobs.derivatives import derivatives_check, upload_postprocess
from .jobs.move import photo_move
from .jobs.projects import deleted_projects_purge, folder_discovery, project_delete, project_rename, project_restore
from .jobs.reconcile import folder_check, manifest_check
from .jobs.regenerate import regenerate
from .jobtype import JobType, by_name

BUILTIN = by_name(
    [
        JobType("upload_postprocess", upload_postprocess, reads_state=True),
        JobType("manifest_check", manifest_check, reads_state=True, merged=True),
        JobType("folder_check", folder_check, reads_state=True, merged=True),
        JobType("file_removal", file_removal, reads_state=True),
        JobType("manifest_cleaning", manifest_cleaning, reads_state=True),
        JobType("trash_maintenance", trash_maintenance, reads_state=True),
        JobType("derivatives_check", derivatives_check, reads_state=True),
        JobType("regenerate", regenerate, reads_state=True),
        JobType("project_rename", project_rename, reads_state=True),
        JobType("project_delete", project_delete, reads_state=True),
        JobType("project_restore", project_restore, reads_state=True),
        JobType("photo_move", photo_move, reads_state=True),
        JobType("deleted_projects_purge", deleted_projects_purge, reads_state=True),
        JobType("folder_discovery", folder_discovery, reads_state=True),
    ]
)


class PluginError(Exception):
    pass


def plain(handlers: dict[str, Handler]) -> dict[str, JobType]:
    """Job types that are their handler alone: no read model, no shared runs."""
    return {name: JobType(name, handler) for name, handler in handlers.items()}


def load_job_types(plugins: list[str], base: dict[str, JobType] | None = None) -> dict[str, JobType]:
    """Each plugin is a module with `JOB_TYPES: list[JobType]`, or `HANDLERS: dict[str, handler]` (plain job
    types); later ones win."""
    job_types = dict(BUILTIN if base is None else base)
    for name in plugins:
        try:
            module = importlib.import_module(name)
        except ImportError as exc:
            raise PluginError(f"pipeline.plugins: cannot import {name!r}: {exc}") from None
        declared, handlers = getattr(module, "JOB_TYPES", None), getattr(module, "HANDLERS", None)
        if isinstance(declared, list) and all(isinstance(j, JobType) for j in declared):
            job_types.update(by_name(declared))
        elif isinstance(handlers, dict):
            job_types.update(plain(handlers))
        else:
            raise PluginError(f"pipeline.plugins: module {name!r} has no JOB_TYPES list or HANDLERS dict")
    return job_types
