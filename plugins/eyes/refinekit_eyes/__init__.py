"""refinekit-eyes: eye-gaze datasets, an eye simulator, the paper's gaze estimator and the eyes-simgan recipe.

Importing the package loads nothing heavy; refinekit finds the hooks through the
``refinekit`` entry point ``eyes = "refinekit_eyes.plugin"``.
"""

__version__ = "0.1.0"
