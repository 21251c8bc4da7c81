"""One writer per output folder (jepa.runlock): who holds it, when a lock is stale, and every command
that writes a folder refusing it in one line. The real-process cases (two runs started together,
SIGKILL then resume, two DDP ranks) are in test_faults.py."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from dataclasses import asdict, replace
from pathlib import Path

import pytest

from jepa.cli import main
from jepa.runlock import (
    EXPIRY_S,
    LOCK_NAME,
    FolderInUse,
    FolderLock,
    hold_folder,
    read_holder,
    take_folder,
    this_process,
)

from conftest import write_tiny_config


@pytest.fixture
def other_process():
    """A live process on this machine that is not this one (the holder the tests write in a lock)."""
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    time.sleep(0.2)  # its /proc entry has its final start time
    yield proc
    proc.kill()
    proc.wait()


def write_lock(folder: Path, age_s: float = 0.0, **fields) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / LOCK_NAME
    path.write_text(json.dumps({**asdict(this_process("jepa pretrain")), **fields}))
    os.utime(path, (time.time() - age_s,) * 2)
    return path


def live_holder(proc: subprocess.Popen) -> dict:
    from jepa.runlock import _start_ticks

    return {"pid": proc.pid, "start_ticks": _start_ticks(proc.pid)}


def test_a_live_holder_refuses_a_second_writer_in_one_line_naming_it(tmp_path, other_process):
    write_lock(tmp_path / "run", **live_holder(other_process))
    with pytest.raises(FolderInUse) as refused:
        FolderLock(tmp_path / "run", "jepa export", hint="give another --out").acquire()
    line = str(refused.value)
    assert "\n" not in line
    assert line.startswith(f"{tmp_path / 'run'} is in use by jepa pretrain (pid {other_process.pid} on "
                           f"{socket.gethostname()}, since "), line
    assert "give another --out" in line


def test_a_lock_whose_holder_died_is_taken_at_once(tmp_path, capsys):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    write_lock(tmp_path, pid=int(dead.stdout), start_ticks=None)
    with FolderLock(tmp_path, "jepa pretrain"):
        assert read_holder(tmp_path)[0].pid == os.getpid()
    assert "that process is gone" in capsys.readouterr().out
    assert not (tmp_path / LOCK_NAME).exists()


def test_a_reused_pid_does_not_keep_a_lock_alive(tmp_path, other_process):
    held = live_holder(other_process)
    write_lock(tmp_path, pid=held["pid"], start_ticks=held["start_ticks"] + 1)  # same pid, another process
    FolderLock(tmp_path, "jepa pretrain").acquire().release()


def test_a_lock_from_another_machine_expires_after_its_last_renewal(tmp_path):
    path = write_lock(tmp_path, age_s=EXPIRY_S - 30, host="node-b", pid=4242, boot=None, pidns=None)
    with pytest.raises(FolderInUse, match=r"pid 4242 on node-b.*expires 600 s after its holder last renewed it"):
        FolderLock(tmp_path, "jepa pretrain").acquire()  # its pid cannot be asked from here: age decides
    os.utime(path, (time.time() - EXPIRY_S - 30,) * 2)
    FolderLock(tmp_path, "jepa pretrain").acquire().release()
    # A container on the same host with another pid namespace counts as another machine.
    write_lock(tmp_path, pid=1, pidns="pid:[1]")
    with pytest.raises(FolderInUse):
        FolderLock(tmp_path, "jepa pretrain").acquire()


def test_the_holder_renews_its_lock_and_waiters_get_it_when_it_ends(tmp_path, other_process):
    lock = FolderLock(tmp_path, "jepa pretrain", heartbeat_s=0.05).acquire()
    os.utime(lock.path, (time.time() - 100,) * 2)
    time.sleep(0.3)
    assert read_holder(tmp_path)[1] < 5  # renewed by the heartbeat
    lock.release()
    # A waiter takes the folder as soon as its live holder lets go.
    holder = subprocess.Popen([sys.executable, "-c", "import sys, time; from jepa.runlock import hold_folder\n"
                               "with hold_folder(sys.argv[1], 'jepa pretrain'):\n    print(flush=True); time.sleep(1)",
                               str(tmp_path)], stdout=subprocess.PIPE, text=True)
    holder.stdout.readline()
    start = time.monotonic()
    FolderLock(tmp_path, "jepa pretrain", wait_s=30).acquire().release()
    assert 0.3 < time.monotonic() - start < 20
    holder.wait()


def test_locks_are_reentrant_in_a_process_and_other_ranks_never_lock(tmp_path, monkeypatch):
    with hold_folder(tmp_path / "a", "jepa plan pipeline") as outer:
        with hold_folder(tmp_path / "a", "jepa plan") as inner:
            assert inner is outer
        assert (tmp_path / "a" / LOCK_NAME).exists()
    assert not (tmp_path / "a" / LOCK_NAME).exists()
    monkeypatch.setenv("LOCAL_RANK", "1")  # a rank Lightning's DDP launcher started
    assert take_folder(tmp_path / "b", "jepa pretrain") is None
    assert not (tmp_path / "b").exists()


def test_every_command_that_writes_a_folder_refuses_a_held_one(tmp_path, other_process, capsys, tiny_video_export):
    cfg = write_tiny_config(tmp_path, steps=2)
    holder = live_holder(other_process)
    run, out = tmp_path / "run", tmp_path / "out"
    for folder, argv in [
        (run, ["pretrain", "--config", str(cfg)]),
        (out, ["export", "nothing.ckpt", "--out", str(out)]),
        (out, ["probe", "attentive", "--encoder", str(tiny_video_export), "--train", "builtin:bouncing",
               "--val", "builtin:bouncing", "--out", str(out)]),
        (out, ["probe", "surprise", "--encoder", str(tiny_video_export), "--pairs", "builtin:voe", "--out", str(out)]),
        (out, ["plan", "--arms", "random", "--out", str(out)]),
        (out, ["plan", "pipeline", "--out", str(out)]),
    ]:
        write_lock(folder, **holder)
        assert main(argv) == 2, argv
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and f"is in use by jepa pretrain (pid {other_process.pid} on" in err[0], (argv, err)
        assert sorted(p.name for p in folder.iterdir()) == [LOCK_NAME]  # nothing written beside it
        (folder / LOCK_NAME).unlink()


def test_a_refused_export_leaves_no_folder_behind(tmp_path, capsys):
    assert main(["export", str(tmp_path / "missing.ckpt"), "--out", str(tmp_path / "new")]) == 2
    assert not (tmp_path / "new").exists()


def test_an_unreadable_lock_is_judged_by_its_age(tmp_path):
    (tmp_path / LOCK_NAME).write_text("{cut short")
    with pytest.raises(FolderInUse, match="an unreadable lock"):
        FolderLock(tmp_path, "jepa pretrain").acquire()
    os.utime(tmp_path / LOCK_NAME, (time.time() - EXPIRY_S - 1,) * 2)
    FolderLock(tmp_path, "jepa pretrain").acquire().release()


def test_a_taken_over_lock_is_not_removed_by_its_old_holder(tmp_path):
    lock = FolderLock(tmp_path, "jepa pretrain").acquire()
    lock.path.write_text(json.dumps(asdict(replace(this_process("another run"), pid=1))))  # taken over meanwhile
    lock.release()
    assert (tmp_path / LOCK_NAME).exists()


def test_lock_wait_waits_for_the_holder_then_refuses(tmp_path, other_process, capsys):
    cfg = write_tiny_config(tmp_path, steps=2)
    write_lock(tmp_path / "run", **live_holder(other_process))
    start = time.monotonic()
    assert main(["pretrain", "--config", str(cfg), "--lock_wait", "1.5"]) == 2
    assert time.monotonic() - start >= 1.5
    out, err = capsys.readouterr()
    assert f"waiting up to 1.5 s for jepa pretrain (pid {other_process.pid} on" in out
    assert err.count("\n") == 1 and "is in use by jepa pretrain" in err
