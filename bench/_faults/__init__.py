"""The fault suite's pieces (bench/faults.py runs them): supervised parts, the load, the disk, the
live SSE client, the schedule and the checks (pure, unit-tested in tests/unit/test_fault_checks.py)."""
