"""Which files a photo move takes where (pure): a photo's variants, sidecars and derivatives, found in
the folder it leaves and in the one it goes to."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

from ..kernel.photos import derivative_names, kind_of, sidecar_photo, split


def photo_files(basename: str, names: Iterable[str], derivatives: Iterable[str]) -> set[str]:
    """The files of one photo, as paths relative to its project folder: among a folder's `names`, its
    variants and sidecars (`DSC01.JPG`, `DSC01.ARW.xmp`, `DSC01.xmp`; basenames compare exactly);
    among `derivatives`, the paths of derivative files that are there, its own."""
    own = {
        n
        for n in names
        if not n.startswith(".")
        and ((kind_of(n) is not None and split(n)[0] == basename) or sidecar_photo(n) == basename)
    }
    return own | (set(derivative_names(basename)) & set(derivatives))


@dataclass(frozen=True)
class MovePlan:
    moves: list[str]  # in the folder the photo leaves only: to be moved
    arrived: list[str]  # in the folder it goes to only: an earlier attempt moved them
    clashes: list[str]  # in both: the same file twice (a copy that stopped before its removal), or another

    @property
    def names(self) -> list[str]:
        """Every file of the photo, wherever it is now."""
        return sorted({*self.moves, *self.arrived, *self.clashes})


def move_plan(here: set[str], there: set[str]) -> MovePlan:
    """What is left to move of a photo with files `here` (the project it leaves) and `there` (the project
    it goes to): a move that stopped half-way goes on where it stopped."""
    return MovePlan(moves=sorted(here - there), arrived=sorted(there - here), clashes=sorted(here & there))
