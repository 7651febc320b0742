"""Property-based tests: the parsers of user-written text raise only their typed error, and round-trip.

Covered: ``--set`` (:func:`refinekit.config.parse_set`), config validation
(:func:`build_config`), config files (:func:`load_toml`), image-folder JSON
sidecars, and the UnityEyes "(x, y, z)" vector strings.
"""

from __future__ import annotations

import json
import math
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from PIL import Image

from refinekit.components.datasets import load_image_folder
from refinekit.config import build_config, iter_keys, load_toml, parse_set
from refinekit.errors import ConfigError, DataError

FAST = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
REQUIRED = {"synthetic": {"name": "image-folder"}, "real": {"name": "image-folder"}}
KEYS = [row[0] for row in iter_keys()]

json_scalars = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=12)
json_values = st.recursive(
    json_scalars, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=8,
)


def _nest(dotted: str, value: Any) -> dict[str, Any]:
    for part in reversed(dotted.split(".")):
        value = {part: value}
    return value


def _toml_string(text: str) -> str:
    """``text`` as a TOML basic string (every control character escaped, as TOML requires)."""
    escaped = "".join(
        f"\\u{ord(c):04x}" if ord(c) < 0x20 or ord(c) == 0x7F or c in '"\\' else c for c in text
    )
    return f'"{escaped}"'


# -- --set -------------------------------------------------------------------------------
@FAST
@given(st.text(max_size=40))
def test_parse_set_raises_only_config_error(expression: str) -> None:
    try:
        parsed = parse_set(expression)
    except ConfigError as exc:
        assert repr(expression) in str(exc)  # the message quotes what was typed
        return
    key = expression.partition("=")[0].strip()
    node: Any = parsed
    for part in key.split("."):
        assert list(node) == [part]
        node = node[part]


@FAST
@given(st.sampled_from(KEYS), st.integers(-(2**63), 2**63 - 1) | st.floats(allow_nan=False) | st.booleans())
def test_parse_set_round_trips_numbers_and_booleans(key: str, value: int | float | bool) -> None:
    text = json.dumps(value) if not isinstance(value, float) or math.isfinite(value) else ("inf" if value > 0 else "-inf")
    parsed = parse_set(f"{key}={text}")
    assert parsed == _nest(key, value)
    assert type(_leaf(parsed)) is type(value)


@FAST
@given(st.sampled_from(KEYS), st.text(st.characters(blacklist_categories=("Cs",)), max_size=20))
def test_parse_set_round_trips_quoted_strings(key: str, value: str) -> None:
    assert parse_set(f"{key}={_toml_string(value)}") == _nest(key, value)


def _leaf(tree: Any) -> Any:
    while isinstance(tree, dict):
        (tree,) = tree.values()
    return tree


# -- build_config ----------------------------------------------------------------------------
@FAST
@given(st.dictionaries(st.sampled_from(KEYS) | st.text(max_size=10), json_values, max_size=4))
def test_build_config_raises_only_config_error(settings_by_key: dict[str, Any]) -> None:
    data: dict[str, Any] = dict(REQUIRED)
    for key, value in settings_by_key.items():
        data = _merge(data, _nest(key, value) if key else {"": value})
    try:
        config = build_config(data)
    except ConfigError as exc:
        assert str(exc).startswith("invalid configuration: ")
        return
    assert config.synthetic.name == "image-folder"


@FAST
@given(json_values)
def test_build_config_survives_any_top_level_value(data: Any) -> None:
    try:
        build_config(data)
    except ConfigError:
        pass


def _merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in override.items():
        merged[key] = _merge(merged[key], value) if isinstance(value, dict) and isinstance(merged.get(key), dict) else value
    return merged


@FAST
@given(
    st.integers(2, 4096),
    st.integers(0, 10_000),
    st.floats(1e-8, 10.0, allow_nan=False),
    st.sampled_from(["sgd", "adam"]),
    st.integers(1, 50),
)
def test_valid_settings_round_trip_through_set_and_json(batch: int, steps: int, lr: float, optim: str, k_g: int) -> None:
    expressions = [
        f"batch_size={batch}", "buffer_size=0", f"schedule.steps={steps}", f"optim.lr_refiner={lr!r}",
        f'optim.name="{optim}"', f"schedule.k_g={k_g}",
    ]
    data: dict[str, Any] = dict(REQUIRED)
    for expression in expressions:
        data = _merge(data, parse_set(expression))
    config = build_config(data)
    assert (config.batch_size, config.schedule.steps, config.optim.lr_refiner) == (batch, steps, lr)
    assert (config.optim.name, config.schedule.k_g) == (optim, k_g)
    assert build_config(json.loads(config.model_dump_json())) == config


# -- load_toml -------------------------------------------------------------------------------
@FAST
@given(st.binary(max_size=80) | st.text(max_size=80).map(str.encode))
def test_load_toml_raises_only_config_error(content: bytes) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "settings.toml"
        path.write_bytes(content)
        try:
            assert isinstance(load_toml(path), dict)
        except ConfigError as exc:
            assert str(path) in str(exc)


# -- image-folder sidecars ----------------------------------------------------------------------
@pytest.fixture(scope="module")
def two_images(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("sidecars")
    for name in ("a", "b"):
        Image.fromarray(np.full((8, 8), 50, dtype=np.uint8)).save(folder / f"{name}.png")
    return folder


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(json_values, json_values)
def test_sidecars_load_as_finite_numbers_or_raise_data_error(two_images: Path, first: Any, second: Any) -> None:
    (two_images / "a.json").write_text(json.dumps(first))
    (two_images / "b.json").write_text(json.dumps(second))
    try:
        images = load_image_folder(str(two_images), channels=1, size=(8, 8))
    except DataError as exc:
        assert ".json" in str(exc) or "sidecar" in str(exc)
        return
    for key, column in images.annotations.items():
        assert column.dtype == np.float64 and len(column) == 2 and np.isfinite(column).all(), key
        assert np.array_equal(column, np.stack([np.asarray(first[key], float), np.asarray(second[key], float)]))


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.dictionaries(st.text(min_size=1, max_size=6), st.lists(st.floats(allow_nan=False, allow_infinity=False, width=32), min_size=2, max_size=2), min_size=1, max_size=3))
def test_sidecars_round_trip(two_images: Path, row: dict[str, list[float]]) -> None:
    for name in ("a", "b"):
        (two_images / f"{name}.json").write_text(json.dumps(row))
    images = load_image_folder(str(two_images), channels=1, size=(8, 8))
    assert sorted(images.annotations) == sorted(row)
    for key, values in row.items():
        assert images.annotations[key].tolist() == [values, values]


# -- UnityEyes vector strings --------------------------------------------------------------------
try:
    from refinekit_eyes import unityeyes
    from refinekit_eyes.loading import BadFile
except ImportError:  # refinekit-eyes is a separate distribution
    unityeyes = None
needs_eyes = pytest.mark.skipif(unityeyes is None, reason="refinekit-eyes is not installed")


@needs_eyes
@FAST
@given(st.one_of(st.text(max_size=40), json_values), st.integers(1, 4))
@example("(1e999, 0, 0)", 3)  # matches the number pattern, but float() reads it as inf
def test_unityeyes_vector_parser_raises_only_bad_file(text: Any, count: int) -> None:
    try:
        values = unityeyes._numbers(text, "eye_details.look_vec", count)
    except BadFile as exc:
        assert "'eye_details.look_vec'" in str(exc)
        return
    assert len(values) == count and all(math.isfinite(v) for v in values)


@needs_eyes
@FAST
@given(st.lists(st.floats(allow_nan=False, allow_infinity=False), min_size=1, max_size=4), st.sampled_from([", ", ",", " , "]))
def test_unityeyes_vector_parser_round_trips(values: list[float], separator: str) -> None:
    text = "(" + separator.join(repr(v) for v in values) + ")"
    assert unityeyes._numbers(text, "head_pose", len(values)) == values


@needs_eyes
@FAST
@given(st.dictionaries(st.sampled_from(["interior_margin_2d", "caruncle_2d", "iris_2d", "eye_details", "head_pose"]), json_values))
def test_unityeyes_annotation_file_raises_only_bad_file(data: dict[str, Any]) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "1.json"
        path.write_text(json.dumps(data))
        try:
            unityeyes.parse_annotation(path)
        except BadFile:
            pass
