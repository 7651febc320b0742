"""refinekit-eyes: the hooks only; each dataset, model and recipe lives in its own module."""

from __future__ import annotations

from refinekit.plugins.hookspecs import Register, hookimpl
from refinekit_eyes.embedded_sample import load_mpiigaze_sample
from refinekit_eyes.eyes_sim import load_eyes_sim
from refinekit_eyes.kaggle_h5 import is_kaggle_h5, load_kaggle_h5
from refinekit_eyes.mpiigaze import is_mpiigaze, load_mpiigaze
from refinekit_eyes.recipe import EYES_SIMGAN
from refinekit_eyes.task import GazeTask
from refinekit_eyes.unityeyes import is_unityeyes_folder, load_unityeyes


@hookimpl
def register_datasets(register: Register) -> None:
    register(
        "unityeyes", load_unityeyes, "UnityEyes folder of N.jpg + N.json (gaze, landmarks)", detect=is_unityeyes_folder
    )
    register("mpiigaze", load_mpiigaze, "MPIIGaze Data/Normalized .mat files (gaze, head pose)", detect=is_mpiigaze)
    register("kaggle-h5", load_kaggle_h5, "Kaggle eye-gaze gaze.h5 / real_gaze.h5", detect=is_kaggle_h5)
    register("eyes-sim", load_eyes_sim, "Procedural eye simulator with exact gaze labels (built in)")
    register("mpiigaze-sample", load_mpiigaze_sample, "1,500 real MPIIGaze eye patches (built in, CC BY-NC-SA 4.0)")


@hookimpl
def register_recipes(register: Register) -> None:
    register(EYES_SIMGAN)


@hookimpl
def register_tasks(register: Register) -> None:
    register("gaze", GazeTask, "The paper's gaze estimator, scored by angular error on held-out real eyes")
