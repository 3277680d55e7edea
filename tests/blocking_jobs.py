"""Worker plugin for a process that the tests kill mid-job."""

from tests.jobtypes import BLOCKING_HANDLERS as HANDLERS

__all__ = ["HANDLERS"]
