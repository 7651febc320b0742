"""refinekit-eyes: the hooks only; each dataset, model and recipe lives in its own module.

Components are named as "module:attribute" and imported on first use, so that listing
recipes or plugins costs no torch import (see refinekit.plugins.lazy_reference).
"""

from __future__ import annotations

from refinekit.plugins.hookspecs import Register, hookimpl
from refinekit_eyes.recipe import EYES_SIMGAN


@hookimpl
def register_datasets(register: Register) -> None:
    register(
        "unityeyes",
        "refinekit_eyes.unityeyes:load_unityeyes",
        "UnityEyes folder of N.jpg + N.json (gaze, landmarks)",
        detect="refinekit_eyes.unityeyes:is_unityeyes_folder",
    )
    register(
        "mpiigaze",
        "refinekit_eyes.mpiigaze:load_mpiigaze",
        "MPIIGaze Data/Normalized .mat files (gaze, head pose)",
        detect="refinekit_eyes.mpiigaze:is_mpiigaze",
    )
    register(
        "kaggle-h5",
        "refinekit_eyes.kaggle_h5:load_kaggle_h5",
        "Kaggle eye-gaze gaze.h5 / real_gaze.h5",
        detect="refinekit_eyes.kaggle_h5:is_kaggle_h5",
    )
    register(
        "eyes-sim",
        "refinekit_eyes.eyes_sim:load_eyes_sim",
        "Procedural eye simulator with exact gaze labels (built in)",
    )
    register(
        "mpiigaze-sample",
        "refinekit_eyes.embedded_sample:load_mpiigaze_sample",
        "1,500 real MPIIGaze eye patches (built in, CC BY-NC-SA 4.0)",
    )


@hookimpl
def register_recipes(register: Register) -> None:
    register(EYES_SIMGAN)


@hookimpl
def register_tasks(register: Register) -> None:
    register(
        "gaze",
        "refinekit_eyes.task:GazeTask",
        "The paper's gaze estimator, scored by angular error on held-out real eyes",
    )


@hookimpl
def register_regularizers(register: Register) -> None:
    register(
        "gaze-consistency",
        "refinekit_eyes.gaze_leash:gaze_consistency",
        "L1 leash plus a frozen synthetic-trained gaze network's change (gaze_weight): looks may change, gaze not",
    )
