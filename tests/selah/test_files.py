"""selah.files: the hashes every stage records, and the folder swap that never leaves a mix."""

import hashlib
import os

from selah.files import replace_folder, sha256_bytes, sha256_file, sha256_files


def test_hashes_match_hashlib(tmp_path):
    first, second = tmp_path / "a", tmp_path / "b"
    first.write_bytes(b"x" * (3 << 20) + b"tail")  # over the 1 MiB read size
    second.write_bytes(b"second")
    assert sha256_bytes(b"second") == hashlib.sha256(b"second").hexdigest()
    assert sha256_file(first) == hashlib.sha256(first.read_bytes()).hexdigest()
    joined = hashlib.sha256(first.read_bytes() + second.read_bytes()).hexdigest()
    assert sha256_files([first, second]) == joined
    assert sha256_files([second, first]) != joined


def test_replace_folder_swaps_in_the_new_folder_and_cleans_up(tmp_path):
    target, staging = tmp_path / "out", tmp_path / "out.tmp"
    target.mkdir()
    (target / "old.txt").write_text("old")
    staging.mkdir()
    (staging / "new.txt").write_text("new")
    assert replace_folder(staging, target) == target
    assert sorted(p.name for p in target.iterdir()) == ["new.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_replace_folder_into_an_empty_place_and_over_a_stale_aside(tmp_path):
    target, staging = tmp_path / "out", tmp_path / "staging"
    stale = tmp_path / f".out.old-{os.getpid()}"  # left by a crash between the two renames
    stale.mkdir()
    staging.mkdir()
    (staging / "f").write_text("1")
    replace_folder(staging, target)
    assert (target / "f").read_text() == "1"
    assert not stale.exists() and not staging.exists()
