"""services/kernel/lease.py: who may tell that a lease's holder is gone."""

from __future__ import annotations

import subprocess
import sys

import pytest

from darkroom.kernel.lease import holder_gone, this_process

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="processes are looked at through /proc")


def test_a_holder_of_this_host_is_gone_once_its_process_has_ended() -> None:
    assert not holder_gone(this_process())
    child = subprocess.Popen(
        [sys.executable, "-c", "from darkroom.kernel.lease import this_process as p; print(p())"],
        stdout=subprocess.PIPE,
        text=True,
    )
    holder = child.communicate()[0].strip()
    assert holder.split("/")[2] == str(child.pid) and holder_gone(holder)


def test_a_holder_elsewhere_or_unreadable_is_left_to_the_ttl() -> None:
    host, namespace, _pid, _started = this_process().split("/")
    assert not holder_gone(f"another-host/{namespace}/1/1")
    assert not holder_gone(f"{host}/pid:[1]/999999999/1")  # another pid namespace: its pids are not ours
    assert not holder_gone("worker-1 upload_postprocess")  # a lease from before holders named their process
