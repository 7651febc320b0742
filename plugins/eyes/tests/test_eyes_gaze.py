"""Gaze conventions: known angles, round trips, angular error and the UnityEyes conversion."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from refinekit_eyes.gaze import (
    angular_error_degrees,
    pitch_yaw_to_vector,
    share_within,
    unityeyes_look_vec_to_gaze,
    vector_to_pitch_yaw,
)


@pytest.mark.parametrize(
    ("pitch_deg", "yaw_deg", "expected"),
    [
        (0, 0, (0, 0, -1)),  # into the camera
        (90, 0, (0, -1, 0)),  # straight up: -y in a y-down camera frame
        (0, 90, (-1, 0, 0)),  # positive yaw: towards the image left
        (0, -90, (1, 0, 0)),
        (30, 0, (0, -0.5, -math.sqrt(3) / 2)),
    ],
)
def test_pitch_yaw_to_vector_known_angles(pitch_deg: float, yaw_deg: float, expected: tuple) -> None:
    vector = pitch_yaw_to_vector(np.deg2rad([[pitch_deg, yaw_deg]]))
    np.testing.assert_allclose(vector[0], expected, atol=1e-12)


@settings(max_examples=50, deadline=None)
@given(st.floats(-1.5, 1.5), st.floats(-3.0, 3.0), st.floats(0.1, 10.0))
def test_vector_pitch_yaw_round_trip(pitch: float, yaw: float, length: float) -> None:
    vector = pitch_yaw_to_vector(np.array([pitch, yaw])) * length
    np.testing.assert_allclose(vector_to_pitch_yaw(vector), [pitch, yaw], atol=1e-9)


def test_functions_keep_the_input_kind() -> None:
    angles = torch.tensor([[0.1, -0.2]])
    assert isinstance(pitch_yaw_to_vector(angles), torch.Tensor)
    assert isinstance(pitch_yaw_to_vector(angles.numpy()), np.ndarray)
    assert isinstance(angular_error_degrees(angles.new_ones(1, 3), angles.new_ones(1, 3)), torch.Tensor)


def test_angular_error_known_angles_and_small_angles() -> None:
    target = pitch_yaw_to_vector(np.zeros((4, 2)))
    pred = pitch_yaw_to_vector(np.deg2rad([[0, 0], [0, 10], [5, 0], [0, 0.01]]))
    np.testing.assert_allclose(angular_error_degrees(pred, target), [0, 10, 5, 0.01], atol=1e-9)
    # float32 keeps sub-degree precision (acos would return 0 for 0.01 degrees)
    small = angular_error_degrees(torch.from_numpy(pred).float(), torch.from_numpy(target).float())
    assert abs(float(small[3]) - 0.01) < 1e-3


def test_angular_error_ignores_vector_length() -> None:
    a = np.array([[0.0, 0.0, -2.0]])
    b = np.array([[0.0, -5.0, 0.0]])
    np.testing.assert_allclose(angular_error_degrees(a, b), [90.0])


def test_share_within() -> None:
    errors = np.array([1.0, 4.0, 5.0, 9.0, 16.0])
    assert share_within(errors, 5) == pytest.approx(0.6)
    assert share_within(errors, 10) == pytest.approx(0.8)
    assert share_within(torch.tensor(errors), 15) == pytest.approx(0.8)
    with pytest.raises(ValueError):
        share_within(np.array([]), 5)


def test_unityeyes_look_vec_flips_only_y() -> None:
    # The fixture's look_vec: the iris sits above the eyelid centre (looking up) and its
    # contour's depth shows it turned towards image right (negative yaw here).
    gaze = unityeyes_look_vec_to_gaze(np.array([[0.3404, 0.3879, -0.8566, 0.0]]))
    np.testing.assert_allclose(
        gaze[0], np.array([0.3404, -0.3879, -0.8566]) / np.linalg.norm([0.3404, 0.3879, 0.8566]), atol=1e-9
    )
    pitch, yaw = vector_to_pitch_yaw(gaze)[0]
    assert pitch > 0 and yaw < 0
