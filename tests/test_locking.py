"""Issue 25, item 2: one writer per output. A second writer of a run, a network, a NIR graph, a
simulation or an experiment's results is refused at once, naming the first; the lock file is
found from the resolved path and removed when the lock is released."""

import fcntl
import os
import subprocess
import sys

import pytest

from bsnn_bindsnet.locking import OutputLocked, acquire, held, lock_file, locked
from test_bad_input import network, one_line_error, run, snapshot  # noqa: F401 (fixtures)

HOLDER = "bsnn train --preset digits-fp --out r (pid 4242, started 2026-12-07 03:00:00 UTC)"


@pytest.fixture
def other_writer():
    """Hold the lock of a path as another process would: its own open file and flock (a
    second open file description is refused even inside one process), and its record."""
    fds = []

    def hold(target):
        path = lock_file(target)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        os.write(fd, (HOLDER + "\n").encode())
        fds.append(fd)
        return path

    yield hold
    for fd in fds:
        os.close(fd)


def test_every_spelling_of_a_folder_names_one_lock_file(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "r").mkdir()
    os.symlink(tmp_path / "r", tmp_path / "link")
    expected = tmp_path / ".r.lock"
    for spelling in ("r", "./r", "r/", "x/../r", str(tmp_path / "r"), "link"):
        assert lock_file(spelling) == expected, spelling


def test_lock_is_reentrant_in_a_process_and_leaves_nothing_behind(tmp_path):
    out = tmp_path / "new" / "deeper" / "run"
    with locked(out, command="first") as lock:
        assert held(out) and lock_file(out).read_text().startswith("first (pid ")
        again = acquire(str(out) + "/")
        assert again is lock and lock.count == 2
        again.release()
        assert held(out)
    assert not held(out)
    assert list(tmp_path.iterdir()) == []  # lock file and the folders it needed: removed


def test_a_second_process_is_refused_naming_the_first(tmp_path):
    out = tmp_path / "run"
    code = ("import sys; from bsnn_bindsnet.locking import acquire\n"
            "try:\n    acquire(sys.argv[1])\nexcept FileExistsError as e:\n"
            "    print(e); sys.exit(3)")
    with locked(out, command="bsnn train --out run"):
        proc = subprocess.run([sys.executable, "-c", code, str(out)], capture_output=True,
                              text=True, timeout=60)
    assert proc.returncode == 3
    assert proc.stdout.startswith(f"{out} is being written by bsnn train --out run (pid "
                                  f"{os.getpid()}, started ")
    assert proc.stdout.strip().endswith(f"wait until it finishes or choose another output "
                                        f"(lock file {tmp_path / '.run.lock'})")
    # once released, the other process takes it
    proc = subprocess.run([sys.executable, "-c", code, str(out)], timeout=60)
    assert proc.returncode == 0 and not lock_file(out).exists()


def test_a_lock_left_by_a_killed_process_is_taken_over(tmp_path):
    out = tmp_path / "run"
    lock_file(out).write_text("bsnn train (pid 1, killed)\n")  # no process holds the flock
    with locked(out, command="second"):
        assert lock_file(out).read_text().startswith("second (pid ")
    assert not lock_file(out).exists()


def test_torchrun_ranks_other_than_0_do_not_lock(tmp_path, monkeypatch, other_writer):
    out = tmp_path / "run"
    other_writer(out)
    monkeypatch.setenv("RANK", "1")
    with locked(out):  # rank 1 writes nothing, so it takes no lock
        pass
    monkeypatch.setenv("RANK", "0")
    with pytest.raises(OutputLocked):
        acquire(out)


# ------------------------------------------------------------------ every writing command

def _refused(capsys, argv, root):
    err = one_line_error(capsys, argv, root)
    assert f"is being written by {HOLDER}; wait until it finishes or choose another output" \
           in err, err
    return err


def test_train_refuses_a_second_writer_under_any_spelling(tmp_path, capsys, other_writer):
    out = tmp_path / "r"
    lock = other_writer(out)
    err = _refused(capsys, ["train", "--preset", "digits-fp", "--out", out], tmp_path)
    assert err.startswith(f"bsnn train: error: {out} is being written by") and str(lock) in err
    _refused(capsys, ["train", "--preset", "digits-fp", "--out", f"{out}/"], tmp_path)


def test_fit_refuses_a_second_writer(tmp_path, other_writer):
    from bsnn_bindsnet.training.fit import RunConfig, fit

    other_writer(tmp_path / "r")
    before = snapshot(tmp_path)
    with pytest.raises(OutputLocked, match="is being written by bsnn train --preset"):
        fit(RunConfig("digits-fp", str(tmp_path / "r"), epochs=1, progress=False))
    assert snapshot(tmp_path) == before


def test_convert_refuses_a_second_writer(run, tmp_path, capsys, other_writer):
    other_writer(tmp_path / "snn.pt")
    _refused(capsys, ["convert", run, "--out", tmp_path / "snn.pt"], tmp_path)


def test_simulate_refuses_a_second_writer(network, tmp_path, capsys, other_writer):
    other_writer(tmp_path / "sim")
    _refused(capsys, ["simulate", network, "--out", tmp_path / "sim"], tmp_path)


def test_export_nir_refuses_a_second_writer(network, tmp_path, capsys, other_writer):
    pytest.importorskip("nir")
    other_writer(tmp_path / "net.nir")
    _refused(capsys, ["export-nir", network, "--out", tmp_path / "net.nir"], tmp_path)


def test_import_nir_refuses_a_second_writer(tmp_path, capsys, other_writer):
    pytest.importorskip("nir")
    (tmp_path / "g.nir").write_bytes(b"\x89HDF\r\n\x1a\n")  # only its existence is checked first
    other_writer(tmp_path / "snn.pt")
    _refused(capsys, ["import-nir", tmp_path / "g.nir", "--out", tmp_path / "snn.pt"], tmp_path)


def test_an_experiment_refuses_a_second_writer_before_any_work(tmp_path, other_writer):
    from experiments import fig7_activation_histogram

    other_writer(tmp_path / "out")
    before = snapshot(tmp_path)
    with pytest.raises(OutputLocked, match="is being written by bsnn train --preset"):
        fig7_activation_histogram.main(["--smoke", "--out-dir", str(tmp_path / "out")])
    assert snapshot(tmp_path) == before  # no models trained, no folder made


def test_the_lock_is_released_after_a_command(run, tmp_path, capsys):
    from bsnn_bindsnet.cli.main import main

    (tmp_path / "snn.pt").write_text("a user's file")
    assert main(["convert", str(run), "--out", str(tmp_path / "snn.pt")]) == 2  # refused
    capsys.readouterr()
    assert not held(tmp_path / "snn.pt") and not lock_file(tmp_path / "snn.pt").exists()


def test_a_second_bsnn_train_is_refused_before_torch_is_imported(tmp_path):
    """Two `bsnn train --out r` started together: the second stops within the checks."""
    code = ("import sys\nfrom bsnn_bindsnet.cli.main import main\n"
            "rc = main(['train', '--preset', 'digits-fp', '--out', sys.argv[1]])\n"
            "print(rc, 'torch' in sys.modules)")
    out = tmp_path / "r"
    with locked(out, command="bsnn train --preset digits-fp --out r"):
        proc = subprocess.run([sys.executable, "-c", code, str(out)], capture_output=True,
                              text=True, timeout=120, cwd=os.path.dirname(os.path.dirname(
                                  os.path.abspath(__file__))))
    assert proc.stdout.split() == ["2", "False"], proc.stderr
    assert proc.stderr.startswith(f"bsnn train: error: {out} is being written by bsnn train "
                                  f"--preset digits-fp --out r (pid {os.getpid()}, started ")
    assert list(tmp_path.iterdir()) == []
