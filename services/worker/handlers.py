"""Job handlers by job type: the built-in ones plus those of configured plugin modules."""

from __future__ import annotations

import importlib

from .context import Handler
from .jobs.commit import file_removal, manifest_cleaning, trash_maintenance
from .jobs.derivatives import derivatives_check, upload_postprocess
from .jobs.move import photo_move
from .jobs.projects import deleted_projects_purge, folder_discovery, project_delete, project_rename, project_restore
from .jobs.reconcile import folder_check, manifest_check
from .jobs.regenerate import regenerate

BUILTIN: dict[str, Handler] = {
    "upload_postprocess": upload_postprocess,
    "manifest_check": manifest_check,
    "folder_check": folder_check,
    "file_removal": file_removal,
    "manifest_cleaning": manifest_cleaning,
    "trash_maintenance": trash_maintenance,
    "derivatives_check": derivatives_check,
    "regenerate": regenerate,
    "project_rename": project_rename,
    "project_delete": project_delete,
    "project_restore": project_restore,
    "photo_move": photo_move,
    "deleted_projects_purge": deleted_projects_purge,
    "folder_discovery": folder_discovery,
}


class PluginError(Exception):
    pass


def load_handlers(plugins: list[str], base: dict[str, Handler] | None = None) -> dict[str, Handler]:
    """Each plugin is a module with `HANDLERS: dict[str, handler]`; later ones win."""
    handlers = dict(BUILTIN if base is None else base)
    for name in plugins:
        try:
            module = importlib.import_module(name)
        except ImportError as exc:
            raise PluginError(f"pipeline.plugins: cannot import {name!r}: {exc}") from None
        table = getattr(module, "HANDLERS", None)
        if not isinstance(table, dict):
            raise PluginError(f"pipeline.plugins: module {name!r} has no HANDLERS dict")
        handlers.update(table)
    return handlers
