"""benchmarks/reference_decode.py refuses a missing reference checkout or package site with
one message that says what to give or run (the benchmark itself needs the reference code)."""

import subprocess

import pytest

from benchmarks.reference_decode import SetupError, check_site, reference_code


def test_a_folder_without_the_reference_is_refused(tmp_path):
    with pytest.raises(SetupError, match="no OSUM-EChat/ directory") as err:
        reference_code(str(tmp_path / "nowhere"), tmp_path)
    assert str(tmp_path / "nowhere") in str(err.value)


def test_a_git_repository_without_osum_echat_is_refused(tmp_path):
    repo = tmp_path / "repo"
    repo.mkdir()
    git = ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run(git + ["init", "-q"], check=True)
    (repo / "README").write_text("not OSUM\n")
    subprocess.run(git + ["add", "README"], check=True)
    subprocess.run(git + ["commit", "-q", "-m", "x"], check=True)
    cache = tmp_path / "cache"
    cache.mkdir()
    with pytest.raises(SetupError, match="has no OSUM-EChat/"):
        reference_code(str(repo), cache)
    assert not any(cache.iterdir())  # the half-extracted folder is cleaned up


def test_a_work_tree_with_osum_echat_is_used_in_place(tmp_path):
    (tmp_path / "OSUM-EChat" / "wenet").mkdir(parents=True)
    folder, commit = reference_code(str(tmp_path), tmp_path / "cache")
    assert folder == tmp_path.resolve() / "OSUM-EChat" and commit is None


def test_missing_packages_name_the_make_target(tmp_path):
    with pytest.raises(SetupError, match="make reference-site"):
        check_site(tmp_path)


def test_the_recorded_command_holds_no_path_of_this_machine():
    from benchmarks.reference_decode import _command

    for argv in (["--reference_dir", "/home/me/OSUM", "--threads", "2"],
                 ["--reference_dir=/home/me/OSUM", "--threads", "2"]):
        command = _command(argv)
        assert "/home/me" not in command and "<OSUM checkout>" in command
        assert command.endswith("--threads 2")
