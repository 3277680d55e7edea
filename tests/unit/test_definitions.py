"""services/kernel/definitions.py: the shipped task definitions and the lane rule (CONTRACT §5)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from darkroom.kernel.definitions import (
    SHIPPED,
    DefinitionError,
    is_maintenance,
    lane_for,
    load_definitions,
    parse_definitions,
)

REPO = Path(__file__).resolve().parents[2]
CONTRACT = {
    "upload_postprocess": (True, [("upload_postprocess", 90), ("manifest_check", 95), ("folder_check", 95)]),
    "change_commit": (
        True,
        [("file_removal", 100), ("manifest_check", 95), ("folder_check", 95), ("manifest_cleaning", 80)],
    ),
    "maintenance": (
        False,
        [
            ("trash_maintenance", 100),
            ("manifest_check", 95),
            ("folder_check", 95),
            ("manifest_cleaning", 80),
            ("derivatives_check", 80),
        ],
    ),
    # CONTRACT §7.4: regeneration in the normal lane; the project lifecycle; maintenance of every project at once.
    "regenerate": (True, [("regenerate", 70)]),
    "project_rename": (True, [("project_rename", 100)]),
    "project_delete": (True, [("project_delete", 100)]),
    "project_restore": (True, [("project_restore", 100)]),
    "photo_move": (True, [("photo_move", 95)]),
    "projects_maintenance": (False, [("deleted_projects_purge", 100), ("folder_discovery", 95)]),
}
GLOBAL = {"projects_maintenance"}


def test_shipped_definitions_match_the_contract():
    defs = load_definitions()
    assert SHIPPED.read_bytes() == (REPO / "schemas" / "task_definitions.json").read_bytes()
    assert set(defs) == set(CONTRACT)
    for name, (user_relevant, steps) in CONTRACT.items():
        assert defs[name].user_relevant is user_relevant, name
        assert [(s.type, s.priority) for s in defs[name].steps] == steps, name
        assert defs[name].scope == ("global" if name in GLOBAL else "project"), name
        assert defs[name].label


def test_lanes_of_the_shipped_steps_with_the_default_threshold():
    defs = load_definitions()

    def lanes(name, source="user"):
        d = defs[name]
        return [lane_for(s.priority, 90, is_maintenance(d.user_relevant, source)) for s in d.steps]

    assert lanes("upload_postprocess") == ["priority", "priority", "priority"]
    assert lanes("change_commit") == ["priority", "priority", "priority", "normal"]
    # A maintenance sweep never queues ahead of a photographer's work, whatever its priorities.
    assert lanes("maintenance") == ["normal"] * 5
    assert lanes("maintenance", source="system") == ["normal"] * 5
    # User-relevant work started by the schedule is maintenance work too.
    assert lanes("change_commit", source="maintenance") == ["normal"] * 4


def _task(**overrides) -> dict:
    task = {"label": "Thing", "user_relevant": True, "steps": [{"type": "manifest_check", "priority": 95}]}
    task.update(overrides)
    return task


def _parse(obj) -> dict:
    return parse_definitions(json.dumps(obj).encode(), "defs.json")


def test_a_minimal_valid_file_parses():
    defs = _parse({"thing": _task(scope="global")})
    assert defs["thing"].scope == "global"
    assert defs["thing"].steps[0].priority == 95


@pytest.mark.parametrize(
    "data, words",
    [
        (b"{ nope", "not valid JSON"),
        (b"[]", "Expected `object`, got `array`"),
        (b"{}", "defines no task types"),
        (json.dumps({"thing": _task(steps=[])}).encode(), "task 'thing': has no steps"),
        (json.dumps({"thing": _task(colour="red")}).encode(), "unknown field `colour`"),
        (
            json.dumps({"thing": _task(steps=[{"type": "x", "priority": 1, "weight": 2}])}).encode(),
            "unknown field `weight`",
        ),
        (
            json.dumps({"thing": {"user_relevant": True, "steps": [{"type": "x", "priority": 1}]}}).encode(),
            "missing required field `label`",
        ),
        (
            json.dumps({"thing": _task(steps=[{"type": "x", "priority": 101}])}).encode(),
            "step 0 priority 101 is outside 0..100",
        ),
        (
            json.dumps({"thing": _task(steps=[{"type": "x", "priority": 1}, {"type": "y", "priority": -1}])}).encode(),
            "step 1 priority -1 is outside 0..100",
        ),
        (json.dumps({"thing": _task(steps=[{"type": "x", "priority": "high"}])}).encode(), "Expected `int`, got `str`"),
        (json.dumps({"Thing-1": _task()}).encode(), "task 'Thing-1': a task type is lower_snake_case"),
        (
            json.dumps({"thing": _task(steps=[{"type": "Folder Check", "priority": 1}])}).encode(),
            "job type 'Folder Check' is not lower_snake_case",
        ),
        (json.dumps({"thing": _task(scope="world")}).encode(), "scope must be 'project' or 'global'"),
    ],
)
def test_bad_files_raise_naming_the_problem(data, words):
    with pytest.raises(DefinitionError) as info:
        parse_definitions(data, "defs.json")
    message = str(info.value)
    assert message.startswith("defs.json: ")
    assert words in message


def test_an_unreadable_file_names_the_path(tmp_path):
    missing = tmp_path / "defs.json"
    with pytest.raises(DefinitionError, match=r"cannot read task definitions .*defs\.json"):
        load_definitions(missing)


def test_load_names_the_file_in_errors(tmp_path):
    path = tmp_path / "broken.json"
    path.write_text(json.dumps({"thing": _task(steps=[])}))
    with pytest.raises(DefinitionError, match=r"broken\.json: task 'thing': has no steps"):
        load_definitions(path)


@pytest.mark.parametrize(
    "user_relevant, source, expected",
    [
        (True, "user", False),
        (True, "system", False),
        (True, "maintenance", True),
        (False, "user", True),
        (False, "system", True),
        (False, "maintenance", True),
    ],
)
def test_is_maintenance(user_relevant, source, expected):
    assert is_maintenance(user_relevant, source) is expected


@pytest.mark.parametrize(
    "priority, threshold, maintenance, lane",
    [
        (90, 90, False, "priority"),  # at the threshold
        (100, 90, False, "priority"),
        (89, 90, False, "normal"),  # just below
        (80, 90, False, "normal"),
        (100, 90, True, "normal"),  # maintenance: always normal
        (0, 0, True, "normal"),
        (0, 0, False, "priority"),  # threshold 0: all user work is priority
        (100, 101, False, "normal"),  # threshold above every priority: nothing is
    ],
)
def test_lane_for(priority, threshold, maintenance, lane):
    assert lane_for(priority, threshold, maintenance) == lane
