"""Class-per-folder digit images, written tiny in tmp_path: labels from folder names, useful errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from refinekit_digits import plugin
from refinekit_digits.folders import is_digit_class_folders, load_digit_class_folders

from refinekit.errors import DataError
from refinekit.plugins.contracts import DatasetContract


def write_tree(root: Path, counts: dict[str, int], side: int = 28, value: int = 200) -> Path:
    for name, count in counts.items():
        (root / name).mkdir(parents=True, exist_ok=True)
        for i in range(count):
            Image.fromarray(np.full((side, side), value, np.uint8)).save(root / name / f"{i:03d}.png")
    return root


def load(path: Path, **options):
    return load_digit_class_folders(str(path), channels=1, size=(28, 28), limit=None, seed=0, **options)


class TestDigitClassFoldersContract(DatasetContract):
    name = "digit-class-folders"
    plugin = plugin
    size = (28, 28)

    def path(self, tmp_path: Path) -> str:
        return str(write_tree(tmp_path / "digits", {"0": 3, "1": 3, "7": 3}))


def test_labels_come_from_folder_names_and_sizes_are_unified(tmp_path: Path) -> None:
    root = write_tree(tmp_path, {"3": 2, "8": 1})
    Image.fromarray(np.full((50, 40), 100, np.uint8)).save(root / "8" / "big.png")
    loaded = load(root)
    assert loaded.images.shape == (4, 1, 28, 28) and loaded.images.dtype == np.uint8
    assert loaded.annotations["label"].tolist() == [3, 3, 8, 8]
    assert set(np.unique(loaded.images)) == {100, 200}


def test_invert_turns_dark_ink_on_paper_into_mnist_polarity(tmp_path: Path) -> None:
    root = write_tree(tmp_path, {"5": 1}, value=30)
    assert load(root, invert=True).images.max() == 225


def test_a_badly_named_folder_is_named(tmp_path: Path) -> None:
    root = write_tree(tmp_path, {"1": 1, "seven": 1})
    with pytest.raises(DataError, match="seven is not a class folder.*0 to 9"):
        load(root)


def test_an_image_outside_the_class_folders_is_named(tmp_path: Path) -> None:
    root = write_tree(tmp_path, {"1": 1})
    Image.fromarray(np.zeros((4, 4), np.uint8)).save(root / "loose.png")
    with pytest.raises(DataError, match="loose.png is outside the class folders"):
        load(root)


def test_an_unreadable_image_is_named(tmp_path: Path) -> None:
    root = write_tree(tmp_path, {"2": 1})
    (root / "2" / "broken.png").write_bytes(b"not a png")
    with pytest.raises(DataError, match="broken.png is not a readable image"):
        load(root)


def test_empty_tree(tmp_path: Path) -> None:
    (tmp_path / "4").mkdir()
    with pytest.raises(DataError, match="no images"):
        load(tmp_path)


def test_detects_class_trees_not_plain_folders(tmp_path: Path) -> None:
    tree = write_tree(tmp_path / "tree", {"0": 1, "9": 1})
    plain = tmp_path / "plain"
    plain.mkdir()
    Image.fromarray(np.zeros((4, 4), np.uint8)).save(plain / "a.png")
    assert is_digit_class_folders(str(tree))
    assert not is_digit_class_folders(str(plain)) and not is_digit_class_folders(str(plain / "a.png"))
