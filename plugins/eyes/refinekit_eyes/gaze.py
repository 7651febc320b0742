"""Gaze vectors, pitch/yaw angles and angular error, in one stated convention.

Every gaze in this plugin uses the MPIIGaze normalised-camera convention: x to
the image right, y to the image bottom, z away from the camera (OpenCV camera
axes), the vector pointing from the eye to what it looks at. A person looking
into the camera has gaze (0, 0, -1). Angles are in radians:

    g = (-cos(pitch) * sin(yaw), -sin(pitch), -cos(pitch) * cos(yaw))

so positive pitch looks up and positive yaw looks towards the image left (the
subject's right). This is the convention of Zhang et al.'s MPIIGaze code, so
angles computed here compare directly with published MPIIGaze numbers.

Functions accept numpy arrays or torch tensors and return the same kind.

Examples:
    >>> import numpy as np
    >>> pitch_yaw_to_vector(np.array([[0.0, 0.0]])) + 0.0  # + 0.0 turns -0. into 0.
    array([[ 0.,  0., -1.]])
    >>> float(angular_error_degrees(np.array([[0.0, 0.0, -1.0]]), np.array([[0.0, -1.0, 0.0]]))[0])
    90.0
"""

from __future__ import annotations

from typing import TypeVar

import numpy as np
import torch

Array = TypeVar("Array", np.ndarray, torch.Tensor)


def pitch_yaw_to_vector(pitch_yaw: Array) -> Array:
    """(..., 2) pitch and yaw in radians -> (..., 3) unit gaze vectors."""
    angles, back = _as_tensor(pitch_yaw)
    pitch, yaw = angles[..., 0], angles[..., 1]
    vector = torch.stack(
        (-torch.cos(pitch) * torch.sin(yaw), -torch.sin(pitch), -torch.cos(pitch) * torch.cos(yaw)), dim=-1
    )
    return back(vector)


def vector_to_pitch_yaw(gaze: Array) -> Array:
    """(..., 3) gaze vectors (any length) -> (..., 2) pitch and yaw in radians."""
    vector, back = _as_tensor(gaze)
    unit = torch.nn.functional.normalize(vector, dim=-1)
    pitch = torch.asin((-unit[..., 1]).clamp(-1.0, 1.0))
    yaw = torch.atan2(-unit[..., 0], -unit[..., 2])
    return back(torch.stack((pitch, yaw), dim=-1))


def angular_error_degrees(pred: Array, target: Array) -> Array:
    """The angle between gaze vectors, in degrees, per row: the standard gaze-estimation error.

    ``atan2(|a x b|, a . b)`` is used instead of ``acos(a . b)`` because acos
    loses all precision for the small angles that matter here (under 1 degree).
    """
    a, back = _as_tensor(pred)
    b, _ = _as_tensor(target)
    a, b = torch.broadcast_tensors(a, b.to(a.dtype))
    cross = torch.linalg.vector_norm(torch.linalg.cross(a, b, dim=-1), dim=-1)
    dot = (a * b).sum(dim=-1)
    return back(torch.rad2deg(torch.atan2(cross, dot)))


def share_within(errors: np.ndarray | torch.Tensor, degrees: float) -> float:
    """The fraction of angular ``errors`` at most ``degrees`` (the paper's Figure 6 curve at one point)."""
    values = torch.as_tensor(errors).reshape(-1)
    if values.numel() == 0:
        raise ValueError("share_within: no errors given")
    return float((values <= degrees).double().mean())


def unityeyes_look_vec_to_gaze(look_vec: Array) -> Array:
    """UnityEyes ``look_vec`` (x right, y up, z away from the camera) -> this plugin's convention.

    Unity's camera frame is left-handed with y up; the OpenCV/MPIIGaze frame has
    y down. Only y changes sign. Checked on the fixture ``unityeyes-1.json``: its
    look_vec (0.34, 0.39, -0.86) has the iris raised above the eyelid centre
    (looking up, pitch > 0 here) and the iris contour's depth values show the disc
    tilted towards image right (yaw < 0 here).
    """
    vector, back = _as_tensor(look_vec)
    converted = vector[..., :3] * vector.new_tensor([1.0, -1.0, 1.0])
    return back(torch.nn.functional.normalize(converted, dim=-1))


def _as_tensor(values: np.ndarray | torch.Tensor):
    """The values as a float tensor plus a function converting a result back to the input's kind."""
    if isinstance(values, torch.Tensor):
        tensor = values if values.is_floating_point() else values.float()
        return tensor, lambda result: result
    array = np.asarray(values, dtype=np.float64)
    return torch.from_numpy(array), lambda result: result.numpy()
