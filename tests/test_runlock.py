"""The lock files that keep one process per run: refused while held, naming the holder, and
gone once the holder is done (safely: a process that opened a file a holder then removed opens
the new one)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from runner.errors import UsageError
from runner.execution import runlock
from runner.execution.runlock import run_id_lock, run_lock, run_lock_path


def test_a_second_holder_is_refused_with_who_holds_it_and_the_file_goes_with_the_holder(
    tmp_path: Path,
) -> None:
    with run_id_lock(tmp_path, "r-1") as path:
        assert json.loads(path.read_text())["pid"] == os.getpid()
        with (
            pytest.raises(UsageError, match=rf"process {os.getpid()} on "),
            run_id_lock(tmp_path, "r-1"),
        ):
            pass  # pragma: no cover - refused
        assert path.exists()  # the refused one did not remove the holder's file
    assert not path.exists()
    with run_lock(tmp_path, str(tmp_path / "jobs.yaml")):
        pass
    assert list(tmp_path.iterdir()) == []


def test_a_file_removed_between_open_and_lock_is_opened_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The holder ends (removing its file) right after we opened it: locking that removed file
    # would lock nothing another process can see. We open the path again.
    real_open = os.open
    opened: list[int] = []

    def open_then_holder_removes(path: str, flags: int, mode: int = 0o777) -> int:
        fd = real_open(path, flags, mode)
        opened.append(fd)
        if len(opened) == 1:
            os.unlink(path)
        return fd

    monkeypatch.setattr(runlock.os, "open", open_then_holder_removes)
    with run_id_lock(tmp_path, "r-2") as path:
        assert len(opened) == 2
        assert json.loads(path.read_text())["pid"] == os.getpid()
    assert not run_lock_path(tmp_path, "r-2").exists()
