"""The project lifecycle's pure parts: which files a move takes where, which folder a rename or restore
gives, what discovery does with a folder, when a deleted project goes, which projects maintenance visits."""

from __future__ import annotations

import pytest

from darkroom.kernel.events import (
    ProjectCreated,
    ProjectDeleted,
    ProjectPurged,
    ProjectRenamed,
    ProjectRestored,
    TaskParams,
)
from darkroom.kernel.manifest import Manifest
from darkroom.kernel.photos import NoFolder, first_free
from darkroom.orchestrator.schedule import live_projects
from darkroom.worker.jobs.regenerate import regenerated
from darkroom.worker.lifecycle import Adopt, Known, Moved, Refuse, adoption, expired
from darkroom.worker.moving import MovePlan, move_plan, photo_files

ID = "01HZX0000000000000000000AB"
NEW = "01HZX0000000000000000000CD"
DERIVATIVES = [".thumb/DSC01.webp", ".preview/DSC01.jpg"]


# -- a photo's files ----------------------------------------------------------------------------


def test_a_photo_takes_its_variants_sidecars_and_derivatives_and_nothing_else():
    folder = [
        "DSC01.JPG",
        "DSC01.ARW",
        "DSC01.ARW.xmp",
        "DSC01.xmp",
        "DSC011.JPG",
        "dsc01.jpg",
        "DSC01.mov",
        "DSC01.txt",
        ".DSC01.JPG",
        ".upload-x.part",
        ".thumb",
        "DSC02.JPG",
        "DSC02.xmp",
    ]
    assert photo_files("DSC01", folder, DERIVATIVES + [".thumb/DSC02.webp"]) == {
        "DSC01.JPG",
        "DSC01.ARW",
        "DSC01.ARW.xmp",
        "DSC01.xmp",
        ".thumb/DSC01.webp",
        ".preview/DSC01.jpg",
    }
    assert photo_files("DSC01", folder, []) == {"DSC01.JPG", "DSC01.ARW", "DSC01.ARW.xmp", "DSC01.xmp"}


def test_a_basename_with_dots_is_compared_whole():
    assert photo_files("IMG.1", ["IMG.1.JPG", "IMG.1.JPG.xmp", "IMG.JPG", "IMG.10.JPG"], []) == {
        "IMG.1.JPG",
        "IMG.1.JPG.xmp",
    }


def test_a_move_plan_goes_on_where_an_earlier_attempt_stopped():
    here = {"DSC01.JPG", "DSC01.xmp", ".thumb/DSC01.webp"}
    there = {"DSC01.ARW", ".thumb/DSC01.webp"}
    plan = move_plan(here, there)
    assert plan == MovePlan(moves=["DSC01.JPG", "DSC01.xmp"], arrived=["DSC01.ARW"], clashes=[".thumb/DSC01.webp"])
    assert plan.names == [".thumb/DSC01.webp", "DSC01.ARW", "DSC01.JPG", "DSC01.xmp"]
    assert move_plan(set(), here) == MovePlan(moves=[], arrived=sorted(here), clashes=[])  # all across: done
    assert move_plan(here, set()).moves == sorted(here)


# -- folders a rename or restore gives ----------------------------------------------------------


def test_the_first_free_folder_is_the_name_its_own_or_the_next_number():
    taken = {"Alps", "Alps (2)"}.__contains__
    assert first_free("Dunes", taken) == "Dunes"
    assert first_free("Alps", taken) == "Alps (3)"
    assert first_free("Alps", taken, current="Alps (2)") == "Alps (2)"  # its own folder is free
    assert first_free("Alps", lambda f: f != "Alps", current="x") == "Alps"
    with pytest.raises(NoFolder, match="too many projects named 'Alps'"):
        first_free("Alps", lambda f: True)


# -- deleted projects -----------------------------------------------------------------------------


def test_a_deleted_project_goes_once_the_trash_ttl_has_passed_since_its_deletion():
    deleted = "2024-05-01T10:00:00.000Z"
    at = 1714557600.0  # that moment
    assert not expired(deleted, at + 86_400, 86_400)
    assert expired(deleted, at + 86_400.5, 86_400)


# -- folder discovery ---------------------------------------------------------------------------


def known(deleted=False, on_disk=False, folder="Shoot") -> dict[str, Known]:
    return {ID: Known(ID, folder, deleted, on_disk)}


def test_a_folder_without_a_manifest_becomes_a_new_project_named_after_it():
    assert adoption("From the card", None, {}, NEW) == Adopt(NEW, "From the card")


def test_a_manifest_of_an_unknown_project_keeps_its_id_when_it_is_one_darkroom_gives():
    assert adoption("Restored", Manifest(ID, "Restored shoot", "2020-01-01"), {}, NEW) == Adopt(ID, "Restored shoot")
    assert adoption("Hand", Manifest("my-own-id", "Hand", "x"), {}, NEW) == Adopt(NEW, "Hand")
    assert adoption("Hand", Manifest(ID, "  ", "x"), {}, NEW) == Adopt(ID, "Hand")
    assert adoption("Hand", Manifest(ID, "n" * 300, "x"), {}, NEW) == Adopt(ID, "Hand")


def test_a_folder_renamed_by_hand_takes_its_project_when_the_old_folder_is_gone():
    assert adoption("After", Manifest(ID, "Before", "x"), known(on_disk=False), NEW) == Moved(ID, "Before")


def test_folders_that_cannot_be_adopted_say_why():
    copy = adoption("Shoot copy", Manifest(ID, "Shoot", "x"), known(on_disk=True), NEW)
    assert isinstance(copy, Refuse) and "a copy of project 'Shoot'" in copy.reason
    gone = adoption("Shoot", Manifest(ID, "Shoot", "x"), known(deleted=True), NEW)
    assert isinstance(gone, Refuse) and "deleted project 'Shoot'" in gone.reason and "restore" in gone.reason
    odd = adoption("Bad: name", None, {}, NEW)
    assert isinstance(odd, Refuse) and "'Bad name'" in odd.reason and "rename the folder" in odd.reason
    assert isinstance(adoption(" Spaced", None, {}, NEW), Refuse)
    assert isinstance(adoption("***", None, {}, NEW), Refuse)


# -- which projects maintenance visits ------------------------------------------------------------


def test_maintenance_visits_the_projects_there_are_in_their_folders_now():
    events = [
        ProjectCreated(project_id="A", name="A", folder="A"),
        ProjectCreated(project_id="B", name="B", folder="B"),
        ProjectCreated(project_id="C", name="C", folder="C"),
        ProjectRenamed(project_id="A", name="A2", folder="A2", previous_folder="A"),
        ProjectDeleted(project_id="B", folder="B"),
        ProjectDeleted(project_id="C", folder="C"),
        ProjectRestored(project_id="C", folder="C (2)"),
        ProjectCreated(project_id="D", name="D", folder="D"),
        ProjectDeleted(project_id="D", folder="D"),
        ProjectPurged(project_id="D"),
        ProjectCreated(project_id="A", name="again", folder="elsewhere"),
    ]  # a duplicate changes nothing
    assert live_projects(events) == {"A": "A2", "C": "C (2)"}


# -- what regenerate makes again ----------------------------------------------------------------


def test_regenerate_makes_both_unless_told_one():
    assert regenerated(None) == regenerated(TaskParams()) == {"derivatives", "metadata"}
    assert regenerated(TaskParams(what=["metadata"])) == {"metadata"}
