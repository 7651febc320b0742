"""Contract tests for plugin components, shipped as a pytest plugin (``pytest11`` entry point).

Subclass a contract in your tests, set ``name`` (the registered name) and, where
needed, ``options``/``channels``/``size``; pytest then runs every check on your
component::

    import my_plugin
    from refinekit.plugins.contracts import RefinerContract

    class TestMyRefiner(RefinerContract):
        name = "my-refiner"
        plugin = my_plugin  # registered for each test, so the tests pass before `pip install`

The failure messages say which promise the component broke, because a plugin
author reads them, not the contract's source.

Installing refinekit also installs the fixture ``refinekit_registry``: a fresh
plugin registry for one test, discarded afterwards.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar, Iterator

import numpy as np
import pytest
import torch

from refinekit.data.image_set import ImageSet
from refinekit.plugins.registry import Registry, get_registry, reset_registry


@pytest.fixture
def refinekit_registry() -> Iterator[Registry]:
    """A fresh registry (built-ins plus the installed plugins the environment allows), discarded afterwards.

    Register in-process plugins with ``refinekit_registry.register_plugin(module, name)``;
    nothing leaks into other tests.
    """
    reset_registry()
    yield get_registry()
    reset_registry()


class _Contract:
    """What every contract shares: the component's name and, optionally, the plugin that registers it."""

    name: ClassVar[str] = ""
    options: ClassVar[dict[str, Any]] = {}
    plugin: ClassVar[Any] = None
    channels: ClassVar[int] = 1
    size: ClassVar[tuple[int, int]] = (35, 55)

    @pytest.fixture(autouse=True)
    def _component_registered(self) -> Iterator[None]:
        # A fresh registry per test: the plugin under test is found whether or not it
        # is installed, and whatever a test registers does not leak into the next one.
        if not self.name:
            pytest.fail(f"{type(self).__name__}: set the class attribute `name` to the registered name to test")
        reset_registry()
        if self.plugin is not None:
            get_registry().register_plugin(self.plugin, getattr(self.plugin, "__name__", type(self).__name__))
        yield
        reset_registry()


class _ModuleContract(_Contract):
    batch: ClassVar[int] = 2

    def make_input(self, seed: int = 0) -> torch.Tensor:
        """A batch of noise images in [-1, 1], the range refiners and discriminators see in training."""
        g = torch.Generator().manual_seed(seed)
        return torch.rand(self.batch, self.channels, *self.size, generator=g) * 2 - 1


class RefinerContract(_ModuleContract):
    """A refiner keeps shape, dtype and [-1, 1] range, uses its input, trains, is seeded, and survives export."""

    def build(self) -> torch.nn.Module:
        from refinekit.plugins.registry import create_refiner

        return create_refiner(self.name, channels=self.channels, **self.options)

    def test_keeps_shape_dtype_and_range(self) -> None:
        x = self.make_input()
        with torch.no_grad():
            y = self.build()(x)
        assert y.shape == x.shape, f"refiner '{self.name}' changed the shape {tuple(x.shape)} -> {tuple(y.shape)}"
        assert y.dtype == x.dtype, f"refiner '{self.name}' changed the dtype {x.dtype} -> {y.dtype}"
        low, high = float(y.min()), float(y.max())
        assert -1.0 <= low and high <= 1.0, (
            f"refiner '{self.name}' output spans [{low:.3f}, {high:.3f}], outside the image range [-1, 1]; "
            "end the network with tanh"
        )

    def test_output_depends_on_input(self) -> None:
        refiner = self.build().eval()
        with torch.no_grad():
            a, b = refiner(self.make_input(0)), refiner(self.make_input(1))
        assert not torch.allclose(a, b), f"refiner '{self.name}' returns the same output for different inputs"

    def test_gradients_reach_every_parameter(self) -> None:
        refiner = self.build()
        refiner(self.make_input()).square().mean().backward()
        missing = [n for n, p in refiner.named_parameters() if p.requires_grad and (p.grad is None or not p.grad.abs().sum())]
        assert not missing, f"refiner '{self.name}': no gradient reaches {missing[:5]}; these parameters never train"

    def test_deterministic_under_seed(self) -> None:
        torch.manual_seed(0)
        a = self.build().eval()
        torch.manual_seed(0)
        b = self.build().eval()
        x = self.make_input()
        with torch.no_grad():
            ya, yb, ya_again = a(x), b(x), a(x)
        assert torch.equal(ya, yb), f"refiner '{self.name}': two builds under torch.manual_seed(0) differ"
        assert torch.equal(ya, ya_again), f"refiner '{self.name}': eval-mode output changes between calls"

    def test_eval_output_independent_of_batch(self) -> None:
        # Refining a dataset in batches of any size must give the same images (e.g. no
        # batch statistics in eval mode), or sharded and resumed refinement would differ.
        refiner = self.build().eval()
        x = self.make_input()
        with torch.no_grad():
            together, alone = refiner(x)[:1], refiner(x[:1])
        assert torch.allclose(together, alone, atol=1e-5), (
            f"refiner '{self.name}': in eval mode an image's output depends on the rest of its batch"
        )

    def test_survives_export_and_load(self, tmp_path: Path) -> None:
        from refinekit.weights.files import export_refiner, load_refiner

        torch.manual_seed(0)
        refiner = self.build().eval()
        path = tmp_path / "refiner.safetensors"
        export_refiner(refiner, path, self.name, dict(self.options), self.channels, self.size)
        torch.manual_seed(1)  # the loaded copy starts from other weights, so equality proves they were loaded
        loaded = load_refiner(path)
        assert not loaded.training, "load_refiner must return the refiner in eval mode"
        x = self.make_input()
        with torch.no_grad():
            assert torch.allclose(refiner(x), loaded(x), atol=1e-6), (
                f"refiner '{self.name}' gives other outputs after export_refiner + load_refiner; "
                "is all its state in state_dict(), and do its factory options rebuild the same network?"
            )


class DiscriminatorContract(_ModuleContract):
    """A discriminator returns (B, 2, h, w) logits, passes gradients to its input, is seeded, and learns."""

    learn_steps: ClassVar[int] = 8
    learn_rate: ClassVar[float] = 1e-2

    def build(self) -> torch.nn.Module:
        from refinekit.plugins.registry import create_discriminator

        return create_discriminator(self.name, channels=self.channels, **self.options)

    def test_logit_grid_shape(self) -> None:
        logits = self.build()(self.make_input())
        assert logits.ndim == 4 and logits.shape[:2] == (self.batch, 2) and logits.shape[2] * logits.shape[3] >= 1, (
            f"discriminator '{self.name}' returned {tuple(logits.shape)}; expected (B, 2, h, w) logits, "
            "channel 0 = refined, channel 1 = real"
        )

    def test_gradient_flows_to_input(self) -> None:
        # The refiner's adversarial loss reaches the refiner only through D's input gradient.
        x = self.make_input().requires_grad_(True)
        self.build()(x)[:, 1].sum().backward()
        assert x.grad is not None and x.grad.abs().sum() > 0, (
            f"discriminator '{self.name}' passes no gradient to its input, so the refiner cannot learn from it"
        )

    def test_deterministic_under_seed(self) -> None:
        x = self.make_input()
        torch.manual_seed(0)
        a = self.build()(x)
        torch.manual_seed(0)
        b = self.build()(x)
        assert torch.equal(a, b), f"discriminator '{self.name}': two builds under torch.manual_seed(0) differ"

    def test_separates_two_constant_images(self) -> None:
        from refinekit.training import losses
        from refinekit.training.losses import REAL, REFINED

        torch.manual_seed(0)
        d = self.build()
        optim = torch.optim.Adam(d.parameters(), lr=self.learn_rate)
        shape = (self.batch, self.channels, *self.size)
        bright, dark = torch.full(shape, 0.8), torch.full(shape, -0.8)
        for _ in range(self.learn_steps):
            loss = losses.discriminator_loss(d(dark), d(bright))
            optim.zero_grad()
            loss.backward()
            optim.step()
        with torch.no_grad():
            real, refined = losses.patch_accuracy(d(bright), REAL), losses.patch_accuracy(d(dark), REFINED)
        assert real > 0.9 and refined > 0.9, (
            f"discriminator '{self.name}' cannot tell a bright from a dark image after {self.learn_steps} Adam "
            f"steps at lr {self.learn_rate} (patch accuracy real {real:.2f}, refined {refined:.2f}); "
            "if it learns but slowly, raise learn_steps"
        )


class RegularizerContract(_ModuleContract):
    """A regulariser is a finite scalar, zero for identical inputs, positive otherwise, and differentiable."""

    def build(self) -> torch.nn.Module:
        from refinekit.plugins.registry import create_regularizer

        return create_regularizer(self.name, channels=self.channels, **self.options)

    def test_zero_for_identical_images(self) -> None:
        x = self.make_input()
        loss = self.build()(x, x.clone())
        assert loss.ndim == 0, f"regularizer '{self.name}' returned shape {tuple(loss.shape)}, not a scalar"
        assert float(loss) == 0.0, f"regularizer '{self.name}' is {float(loss)} for identical images, not 0"

    def test_positive_and_differentiable_for_different_images(self) -> None:
        x = self.make_input(0)
        y = self.make_input(1).requires_grad_(True)
        loss = self.build()(y, x)
        loss.backward()
        value = float(loss.detach())
        assert np.isfinite(value) and value > 0, f"regularizer '{self.name}' is {value} for different images"
        assert y.grad is not None and y.grad.abs().sum() > 0, (
            f"regularizer '{self.name}' passes no gradient to the refined images, so it cannot hold the refiner back"
        )


class DatasetContract(_Contract):
    """A dataset loader returns an :class:`ImageSet` of the requested shape, uint8, seeded, honouring ``limit``.

    Set ``name`` and override :meth:`path` to return the input to load (or None
    for generated data); it may write files into ``tmp_path``.
    """

    def path(self, tmp_path: Path) -> str | None:
        return None

    def load(self, tmp_path: Path, seed: int = 0, limit: int | None = 8) -> ImageSet:
        from refinekit.plugins.registry import get_dataset

        return get_dataset(self.name).factory(
            self.path(tmp_path), channels=self.channels, size=self.size, limit=limit, seed=seed, **self.options
        )

    def test_returns_uint8_images_of_requested_shape(self, tmp_path: Path) -> None:
        images = self.load(tmp_path)
        assert isinstance(images, ImageSet), f"dataset '{self.name}' returned {type(images).__name__}, not ImageSet"
        assert len(images) > 0, f"dataset '{self.name}' returned no images"
        assert images.images.dtype == np.uint8
        assert images.shape == (self.channels, *self.size), (
            f"dataset '{self.name}' returned images of shape {images.shape}; asked for {(self.channels, *self.size)}"
        )
        assert images.source, f"dataset '{self.name}': set ImageSet.source, the run prints it"

    def test_annotations_align_with_images(self, tmp_path: Path) -> None:
        images = self.load(tmp_path)
        for key, value in images.annotations.items():
            assert isinstance(value, np.ndarray), f"dataset '{self.name}': annotation '{key}' is not a numpy array"
            assert len(value) == len(images), f"dataset '{self.name}': annotation '{key}' has {len(value)} rows"

    def test_honours_limit(self, tmp_path: Path) -> None:
        # A tiny run (synthetic.limit=16) must not read or generate the whole dataset.
        assert len(self.load(tmp_path, limit=3)) <= 3, f"dataset '{self.name}' returned more than limit=3 images"

    def test_same_seed_same_images(self, tmp_path: Path) -> None:
        a, b = self.load(tmp_path, seed=3), self.load(tmp_path, seed=3)
        assert np.array_equal(a.images, b.images), f"dataset '{self.name}' returns other images for the same seed"
        for key in a.annotations:
            assert np.array_equal(a.annotations[key], b.annotations[key]), f"annotation '{key}' changes for one seed"


class TaskContract(_Contract):
    """An evaluation task trains on its labels, scores per image, and gives fixed, disjoint labelled-real splits.

    Set ``name`` (the registered task). The model checks need labelled images:
    by default the task's own ``labelled_real("train", ...)``; override
    :meth:`labelled` for a task without embedded labelled data (e.g. load a
    few images with your dataset loader). Override :meth:`labelled_path` to
    point ``labelled_real`` at a file or folder, as ``--real-labelled`` would.
    """

    def task(self) -> Any:
        from refinekit.plugins.registry import get_task

        return get_task(self.name)

    def image_config(self) -> Any:
        from refinekit.config import ImageConfig

        return ImageConfig(channels=self.channels, height=self.size[0], width=self.size[1])

    def labelled_path(self, tmp_path: Path) -> str | None:
        return None

    def labelled(self, tmp_path: Path) -> ImageSet:
        found = self.task().labelled_real("train", self.labelled_path(tmp_path), self.image_config(), 0)
        if found is None:
            pytest.fail(
                f"{type(self).__name__}: task '{self.name}' has no labelled real data of its own; "
                "override labelled(tmp_path) to return a few labelled images (e.g. from your dataset loader)"
            )
        return found

    def _batch(self, tmp_path: Path, count: int = 8) -> tuple[torch.Tensor, torch.Tensor]:
        from refinekit.data.image_set import to_float

        images = self.labelled(tmp_path)
        images = images.subset(np.arange(min(count, len(images))))
        self.task().check_labels(images, f"task '{self.name}' labelled images")
        return to_float(torch.from_numpy(np.ascontiguousarray(images.images))), self.task().targets(images.annotations)

    def test_declares_what_it_reads_and_scores(self) -> None:
        task = self.task()
        assert task.label_keys, f"task '{self.name}': set label_keys, the annotations targets() reads"
        assert task.metric, f"task '{self.name}': set metric, the headline key of compare()"

    def test_model_trains_on_its_targets(self, tmp_path: Path) -> None:
        task = self.task()
        x, targets = self._batch(tmp_path)
        torch.manual_seed(0)
        model = task.make_model(self.channels, self.size)
        loss = task.loss(model(task.augment(x)), targets)
        assert loss.ndim == 0 and torch.isfinite(loss), f"task '{self.name}': loss() must return a finite scalar"
        loss.backward()
        assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters()), (
            f"task '{self.name}': the loss does not reach the model's parameters"
        )

    def test_compare_scores_each_image_and_a_perfect_prediction_best(self, tmp_path: Path) -> None:
        task = self.task()
        x, targets = self._batch(tmp_path)
        torch.manual_seed(0)
        with torch.no_grad():
            predicted = task.decode(task.make_model(self.channels, self.size).eval()(x))
        scores, perfect = task.compare(predicted, targets), task.compare(targets, targets)
        assert task.metric in scores, f"task '{self.name}': compare() has no '{task.metric}' (its metric)"
        for key, value in scores.items():
            assert isinstance(value, np.ndarray) and value.shape == (len(x),), (
                f"task '{self.name}': compare()['{key}'] must be one value per image, shape ({len(x)},)"
            )
        best, got = float(np.mean(perfect[task.metric])), float(np.mean(scores[task.metric]))
        assert (best >= got) if task.higher_is_better else (best <= got), (
            f"task '{self.name}': comparing the labels with themselves scores {best}, worse than a random "
            f"model's {got}; check higher_is_better"
        )

    def test_labelled_real_splits_are_disjoint_and_fixed(self, tmp_path: Path) -> None:
        # The evaluation tests on "test" and may train on "train": an image in both, or one that moves
        # between them with the seed, would score a model on images it was trained on.
        task, image, path = self.task(), self.image_config(), self.labelled_path(tmp_path)
        splits = {
            (split, seed): task.labelled_real(split, path, image, seed) for split in ("train", "test") for seed in (0, 1)
        }
        if all(found is None for found in splits.values()):
            pytest.skip(f"task '{self.name}' has no labelled real data: evaluation skips the real-trained model")

        def hashes(found: ImageSet | None) -> set[bytes]:
            return set() if found is None else {row.tobytes() for row in found.images}

        for seed in (0, 1):
            for other in (0, 1):
                shared = hashes(splits["train", seed]) & hashes(splits["test", other])
                assert not shared, (
                    f"task '{self.name}': {len(shared)} images are in labelled_real('train', seed={seed}) and "
                    f"labelled_real('test', seed={other}); the splits must be disjoint and must not change with "
                    "the seed (the seed may only pick a subset)"
                )
        again = task.labelled_real("test", path, image, 0)
        assert hashes(again) == hashes(splits["test", 0]), f"task '{self.name}': the test split changes for one seed"


class RecipeContract(_Contract):
    """A recipe resolves to a valid config, in every schedule, naming components and datasets that exist.

    Set ``name`` (the registered recipe). With ``smoke_overrides`` (``--set``
    strings that make a run tiny, e.g. ``["synthetic.limit=16", ...]``) the
    contract also trains it for a few steps on the CPU.
    """

    smoke_overrides: ClassVar[list[str] | None] = None

    def test_resolves_in_every_schedule(self) -> None:
        from refinekit.plugins.registry import get_recipe
        from refinekit.training.setup import resolve_config

        recipe = get_recipe(self.name)
        assert recipe.description, f"recipe '{self.name}': give it a one-line description for 'refinekit recipes'"
        if recipe.default_schedule is not None:
            assert recipe.default_schedule in recipe.schedules, (
                f"recipe '{self.name}': default_schedule '{recipe.default_schedule}' is not one of its schedules"
            )
        for schedule in [None, *recipe.schedules]:
            resolve_config(self.name, schedule=schedule)

    def test_names_registered_components_datasets_and_task(self) -> None:
        from refinekit.plugins.registry import get_recipe, get_registry
        from refinekit.training.setup import resolve_config

        registry, config = get_registry(), resolve_config(self.name)
        wanted = [
            ("refiner", config.refiner.name), ("discriminator", config.discriminator.name),
            ("regularizer", config.regularizer.name), ("dataset", config.synthetic.name), ("dataset", config.real.name),
        ]
        task = get_recipe(self.name).task
        if task is not None:
            wanted.append(("task", task))
        for kind, name in wanted:
            assert name in registry.names(kind), f"recipe '{self.name}' names {kind} '{name}', which is not registered"

    def test_trains_a_few_steps(self, tmp_path: Path) -> None:
        if self.smoke_overrides is None:
            pytest.skip(f"{type(self).__name__}: set smoke_overrides to train recipe '{self.name}' for a few steps")
        import json

        from refinekit.training.setup import prepare, resolve_config

        small = {
            "device": "cpu",
            "schedule.refiner_pretrain_steps": 1,
            "schedule.discriminator_pretrain_steps": 1,
            "schedule.steps": 1,
        }
        overrides = [f"{key}={json.dumps(value)}" for key, value in small.items()]
        config = resolve_config(self.name, overrides=[*overrides, *self.smoke_overrides])
        trainer = prepare(config, tmp_path / "run")
        try:
            result = trainer.fit()
        finally:
            lock = getattr(trainer, "folder_lock", None)
            if lock is not None:
                lock.release()
        assert result.refiner_path.exists(), f"recipe '{self.name}' trained but wrote no refiner"
