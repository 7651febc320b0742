"""The mpiigaze loader: the layout fixture as a file, a person folder and a tree; v7.3; lists; errors."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest
import refinekit_eyes.plugin
import scipy.io
from refinekit_eyes.mpiigaze import is_mpiigaze, load_mpiigaze

from refinekit.config import HoldoutConfig
from refinekit.data.heldout import split_real
from refinekit.data.image_set import resize_uint8
from refinekit.errors import DataError
from refinekit.plugins.contracts import DatasetContract

FIXTURE = Path(__file__).parent / "fixtures" / "mpiigaze_day01_layout_fixture.mat"
SIZE = (35, 55)
PER_EYE = 10  # samples per eye in the fixture


def load(path, **options):
    return load_mpiigaze(str(path), channels=1, size=SIZE, limit=None, seed=0, **options)


def fixture_arrays() -> dict:
    mat = scipy.io.loadmat(str(FIXTURE), struct_as_record=False, squeeze_me=True)
    return {"left": mat["data"].left, "right": mat["data"].right, "filenames": list(mat["filenames"])}


def test_single_file_parses_layout() -> None:
    images = load(FIXTURE)
    assert images.images.shape == (2 * PER_EYE, 1, *SIZE)
    ann = images.annotations
    assert set(ann) == {"gaze", "pitch_yaw", "head_pose", "eye", "person", "day", "frame"}
    np.testing.assert_array_equal(ann["eye"], [0] * PER_EYE + [1] * PER_EYE)
    np.testing.assert_array_equal(ann["frame"][:PER_EYE], np.arange(1, PER_EYE + 1))
    assert ann["gaze"].shape == (20, 3) and ann["head_pose"].shape == (20, 3)
    # the whole 36x60 patch is area-resized, not cropped
    raw = fixture_arrays()["left"].image
    np.testing.assert_array_equal(images.images[:PER_EYE], resize_uint8(raw[:, None], SIZE))


def test_person_folder_and_tree_name_person_and_day(tmp_path: Path, make_mpiigaze_tree) -> None:
    normalized = make_mpiigaze_tree(tmp_path / "MPIIGaze", people=("p00", "p07"), days=("day01", "day03"))
    person = load(normalized / "p07")
    assert len(person) == 40 and set(person.annotations["person"]) == {7}
    assert set(person.annotations["day"]) == {1, 3}
    tree = load(normalized)
    assert len(tree) == 80 and set(tree.annotations["person"]) == {0, 7}
    root = load(tmp_path / "MPIIGaze")  # the dataset root holding Data/Normalized
    assert len(root) == 80
    assert all(is_mpiigaze(str(p)) for p in (FIXTURE, normalized / "p07", normalized, tmp_path / "MPIIGaze"))
    assert not is_mpiigaze(str(tmp_path))


def test_real_holdout_by_person_holds_out_whole_people(tmp_path: Path, make_mpiigaze_tree) -> None:
    """``real_holdout.group_by='person'`` on a real MPIIGaze tree: D never sees the held-out people."""
    tree = load(make_mpiigaze_tree(tmp_path / "MPIIGaze", people=("p00", "p03", "p05", "p07")))
    train, held = split_real(tree, HoldoutConfig(fraction=0.25, seed=0, group_by="person"))
    assert len(set(held.annotations["person"])) == 1 and len(held) == 20  # one person's 20 eyes: a quarter
    assert set(train.annotations["person"]) == {0, 3, 5, 7} - set(held.annotations["person"])


def test_flip_right_mirrors_right_eyes_only() -> None:
    plain, flipped = load(FIXTURE), load(FIXTURE, flip_right=True)
    np.testing.assert_array_equal(plain.images[:PER_EYE], flipped.images[:PER_EYE])
    np.testing.assert_array_equal(plain.images[PER_EYE:, :, :, ::-1], flipped.images[PER_EYE:])


def test_evaluation_list_file_and_folder(tmp_path: Path, make_mpiigaze_tree) -> None:
    lists = tmp_path / "Evaluation Subset"
    lists.mkdir()
    (lists / "p00.txt").write_text("day01/0002.jpg left\nday01/0005.jpg right\n\nday09/0001.jpg left\n")
    (lists / "p01.txt").write_text("day01/0003.jpg right\n")
    normalized = make_mpiigaze_tree(tmp_path / "m", people=("p00", "p01"))
    one = load(normalized / "p00" / "day01.mat", evaluation_list=str(lists / "p00.txt"))
    assert one.annotations["frame"].tolist() == [2, 5] and one.annotations["eye"].tolist() == [0, 1]
    both = load(normalized, evaluation_list=str(lists))
    assert list(zip(both.annotations["person"], both.annotations["frame"], both.annotations["eye"], strict=True)) == [
        (0, 2, 0),
        (0, 5, 1),
        (1, 3, 1),
    ]
    # the selected image is the one stored for that frame and eye
    raw = fixture_arrays()
    direct = load(FIXTURE)
    np.testing.assert_array_equal(one.images[1], direct.images[PER_EYE + 4])
    assert raw["filenames"][4] == "0005.jpg"


def test_evaluation_list_errors(tmp_path: Path, make_mpiigaze_tree) -> None:
    bad = tmp_path / "p00.txt"
    bad.write_text("day01/0002.jpg left\nday01/0003.jpg middle\n")
    with pytest.raises(DataError, match=r"p00\.txt line 2 is 'day01/0003\.jpg middle'"):
        load(FIXTURE, evaluation_list=str(bad))
    none = tmp_path / "p05.txt"
    none.write_text("day07/0001.jpg left\n")
    normalized = make_mpiigaze_tree(tmp_path / "m", people=("p00", "p01"))
    with pytest.raises(DataError, match="no samples"):
        load(normalized / "p00", evaluation_list=str(none))
    folder = tmp_path / "lists"
    folder.mkdir()
    (folder / "p00.txt").write_text("day01/0001.jpg left\n")
    with pytest.raises(DataError, match=r"has no p01\.txt for p01/day01\.mat"):
        load(normalized, evaluation_list=str(folder))
    with pytest.raises(DataError, match=r"evaluation_list .* does not exist"):
        load(FIXTURE, evaluation_list=str(tmp_path / "missing"))


def write_v73(path: Path) -> None:
    """The fixture's content as a MATLAB v7.3 (HDF5) file: 512-byte header, arrays stored transposed."""
    raw = fixture_arrays()
    with h5py.File(path, "w", userblock_size=512) as f:
        for eye in ("left", "right"):
            struct = raw[eye]
            for field in ("image", "gaze", "pose"):
                f.create_dataset(f"data/{eye}/{field}", data=np.asarray(getattr(struct, field)).T)
        refs = f.create_group("#refs#")
        handles = []
        for i, name in enumerate(raw["filenames"]):
            handles.append(refs.create_dataset(f"n{i}", data=np.array([[ord(c)] for c in name], np.uint16)).ref)
        f.create_dataset("filenames", data=np.array([handles], dtype=h5py.ref_dtype))
    header = b"MATLAB 7.3 MAT-file, Platform: GLNXA64, Created on: test HDF5 schema 1.00 ."
    with open(path, "r+b") as f:
        f.write(header.ljust(116) + b"\x00" * 8 + b"\x00\x02" + b"IM")


def test_v73_file_reads_like_v5(tmp_path: Path) -> None:
    v73 = tmp_path / "p00" / "day01.mat"
    v73.parent.mkdir()
    write_v73(v73)
    a, b = load(FIXTURE), load(v73)
    np.testing.assert_array_equal(a.images, b.images)
    np.testing.assert_array_equal(a.annotations["frame"], b.annotations["frame"])
    assert b.annotations["person"][0] == 0


def test_missing_path_and_empty_folder(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="does not exist"):
        load(tmp_path / "nowhere")
    with pytest.raises(DataError, match=r"holds no \.mat files"):
        load(tmp_path)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", r"day01\.mat is truncated"),
        (FIXTURE.read_bytes()[:300], r"day01\.mat is not a readable MATLAB file"),
        (b"x" * 600, r"day01\.mat is not a readable MATLAB file"),
    ],
)
def test_damaged_files(tmp_path: Path, content: bytes, message: str) -> None:
    (tmp_path / "p00").mkdir()
    (tmp_path / "p00" / "day01.mat").write_bytes(content)
    with pytest.raises(DataError, match=message) as info:
        load(tmp_path)
    assert "--skip-bad" in str(info.value)


@pytest.mark.parametrize(
    ("mat", "message"),
    [
        ({"other": np.zeros(3)}, r"has no 'data'"),
        (
            {"data": {"left": {"image": np.zeros((2, 36, 60), np.uint8)}}, "filenames": ["a"]},
            r"has no 'data\.left\.gaze'",
        ),
        (
            {
                "data": {
                    "left": {
                        "image": np.zeros((2, 36, 60), np.uint8),
                        "gaze": np.zeros((2, 3)),
                        "pose": np.zeros((2, 3)),
                    },
                    "right": {"image": np.zeros((2, 36, 60)), "gaze": np.zeros((2, 3)), "pose": np.zeros((2, 3))},
                },
                "filenames": ["0001.jpg", "0002.jpg"],
            },
            r"'data\.right\.image' of float64 .* expected uint8",
        ),
        (
            {
                "data": {
                    "left": {
                        "image": np.zeros((2, 36, 60), np.uint8),
                        "gaze": np.array(["a", "b"]),
                        "pose": np.zeros((2, 3)),
                    },
                    "right": {
                        "image": np.zeros((2, 36, 60), np.uint8),
                        "gaze": np.zeros((2, 3)),
                        "pose": np.zeros((2, 3)),
                    },
                },
                "filenames": ["0001.jpg", "0002.jpg"],
            },
            r"'data\.left\.gaze' of <U1 .* expected numbers",
        ),
        (
            {
                "data": {
                    "left": {
                        "image": np.zeros((2, 36, 60), np.uint8),
                        "gaze": np.zeros((2, 3)),
                        "pose": np.zeros((2, 3)),
                    },
                    "right": {
                        "image": np.zeros((2, 36, 60), np.uint8),
                        "gaze": np.zeros((2, 3)),
                        "pose": np.zeros((2, 3)),
                    },
                },
                "filenames": ["0001.jpg", "0002.jpg", "0003.jpg"],
            },
            r"has 2 rows in 'data\.left\.image' but 3 'filenames'",
        ),
    ],
)
def test_wrong_layouts_name_the_field(tmp_path: Path, mat: dict, message: str) -> None:
    path = tmp_path / "day01.mat"
    scipy.io.savemat(str(path), mat)
    with pytest.raises(DataError, match=message):
        load(path)


def test_skip_bad_counts_and_warns(tmp_path: Path, make_mpiigaze_tree) -> None:
    normalized = make_mpiigaze_tree(tmp_path, people=("p00", "p01"))
    (normalized / "p01" / "day02.mat").write_bytes(b"")
    with pytest.warns(UserWarning, match=r"mpiigaze: skipped 1 of 3 files \(first: p01/day02\.mat: is truncated"):
        images = load(normalized, skip_bad=True)
    assert len(images) == 40


def test_unknown_option() -> None:
    with pytest.raises(DataError, match=r"unknown option 'evaluation' \(did you mean 'evaluation_list'\?\)"):
        load(FIXTURE, evaluation=1)


def test_limit_is_a_seeded_subset() -> None:
    a = load_mpiigaze(str(FIXTURE), channels=1, size=SIZE, limit=5, seed=1)
    b = load_mpiigaze(str(FIXTURE), channels=1, size=SIZE, limit=5, seed=1)
    assert len(a) == 5 and np.array_equal(a.annotations["frame"], b.annotations["frame"])


class TestMPIIGazeContract(DatasetContract):
    name = "mpiigaze"
    plugin = refinekit_eyes.plugin

    def path(self, tmp_path: Path) -> str:
        return str(FIXTURE)
