"""emollm._io: whole files or none, and output paths refused in one line before any work."""

import os
import signal
import subprocess
import sys

import pytest

from emollm._io import NewFolders, OutputPathError, atomic_write, check_output_dir, check_output_file
from tests.bad_input_helpers import unwritable_folder


def test_an_error_keeps_the_old_file_and_leaves_no_temporary(tmp_path):
    path = tmp_path / "out.jsonl"
    path.write_text("old\n")
    path.chmod(0o640)
    with pytest.raises(RuntimeError), atomic_write(path) as f:
        f.write("half of the new")
        raise RuntimeError("disk full")
    assert path.read_text() == "old\n" and os.listdir(tmp_path) == ["out.jsonl"]
    with atomic_write(path) as f:
        f.write("new\n")
    assert path.read_text() == "new\n" and os.listdir(tmp_path) == ["out.jsonl"]
    assert path.stat().st_mode & 0o777 == 0o640  # the replaced file's mode, not mkstemp's 0o600


def test_a_kill_in_the_middle_keeps_the_old_file(tmp_path):
    path = tmp_path / "out.jsonl"
    path.write_text("old\n")
    code = ("import os, signal, sys; from emollm._io import atomic_write\n"
            "with atomic_write(sys.argv[1]) as f:\n"
            "    f.write('new, cut short'); f.flush(); os.kill(os.getpid(), signal.SIGKILL)\n")
    done = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, timeout=60)
    assert done.returncode == -signal.SIGKILL
    assert path.read_text() == "old\n"


def test_output_file_checks(tmp_path):
    (tmp_path / "notes.txt").write_text("x")
    (tmp_path / "folder.jsonl").mkdir()
    assert check_output_file(tmp_path / "new" / "out.jsonl") == tmp_path / "new" / "out.jsonl"
    for path, message in [(tmp_path / "folder.jsonl", "is a folder"),
                          (tmp_path / "notes.txt" / "out.jsonl", "notes.txt is a file"),
                          ("", "the path is empty"), ("a\0b", "NUL"), ("/dev/null", "not a regular file")]:
        with pytest.raises(OutputPathError, match=message):
            check_output_file(path)
    with pytest.raises(OutputPathError, match="cannot write in"):
        check_output_file(unwritable_folder(tmp_path) / "out.jsonl")
    assert not (tmp_path / "new").exists()  # checking creates nothing


def test_output_dir_checks(tmp_path):
    (tmp_path / "notes.txt").write_text("x")
    check_output_dir(tmp_path / "a" / "b")
    for path, message in [(tmp_path / "notes.txt", "is a file, not a folder"),
                          (tmp_path / "notes.txt" / "sub", "notes.txt is a file")]:
        with pytest.raises(OutputPathError, match=message):
            check_output_dir(path)
    with pytest.raises(OutputPathError, match="cannot write in"):
        check_output_dir(unwritable_folder(tmp_path) / "out")


def test_new_folders_are_removed_after_an_error_unless_something_is_in_them(tmp_path):
    with pytest.raises(ValueError), NewFolders(tmp_path / "a" / "b"):
        raise ValueError
    assert not (tmp_path / "a").exists()
    with pytest.raises(ValueError), NewFolders(tmp_path / "a" / "b"):
        (tmp_path / "a" / "b" / "kept.jsonl").write_text("{}\n")
        raise ValueError
    assert (tmp_path / "a" / "b" / "kept.jsonl").exists()
    with NewFolders(tmp_path / "c"):
        pass
    assert (tmp_path / "c").is_dir()
