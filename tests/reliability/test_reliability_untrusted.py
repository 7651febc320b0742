"""No code runs from data files: weights are safetensors, pickles are refused or read with weights_only.

``refinekit convert`` is the one door for ``.pt`` / ``.pth`` files; a pickle whose
``__reduce__`` would run a command must be refused without running it.
"""

from __future__ import annotations

import ast
import os
import pickle
import shlex
from pathlib import Path

import pytest
import torch

from refinekit.components.refiners import SimGANResNet
from refinekit.weights.files import load_refiner

ROOT = Path(__file__).parents[2]
SMALL = {"features": 8, "blocks": 1}
SMALL_SET = ["--set", "features=8", "--set", "blocks=1"]


class RunsACommand:
    """Unpickling this runs ``touch MARKER``: what a booby-trapped weights file does."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {shlex.quote(str(self.marker))}",))


def _weights(seed: int = 0, channels: int = 1) -> dict[str, torch.Tensor]:
    torch.manual_seed(seed)
    return SimGANResNet(channels, **SMALL).state_dict()


def _convert(kit, source: Path, target: Path, *extra: str):
    return kit.invoke(["convert", str(source), str(target), "--refiner", "simgan-resnet", *SMALL_SET, *extra])


def _said(result) -> str:
    return " ".join(result.output.split())


@pytest.mark.parametrize(
    "wrap",
    [
        lambda sd: sd,
        lambda sd: {"state_dict": sd, "epoch": 7, "optimizer": {"lr": 0.1}},
        lambda sd: {f"module.{k}": v for k, v in sd.items()},  # saved from DistributedDataParallel
    ],
    ids=["state-dict", "training-checkpoint", "ddp-prefixed"],
)
def test_convert_writes_a_refiner_with_the_same_weights(kit, tmp_path, wrap) -> None:
    weights = _weights()
    torch.save(wrap(weights), tmp_path / "refiner.pt")
    result = _convert(kit, tmp_path / "refiner.pt", tmp_path / "refiner.safetensors", "--height", "16", "--width", "20")
    assert result.exit_code == 0, result.output
    refiner = load_refiner(tmp_path / "refiner.safetensors")
    assert refiner.refinekit_image_size == (16, 20) and refiner.refinekit_channels == 1
    loaded = refiner.state_dict()
    assert sorted(loaded) == sorted(weights) and all(torch.equal(loaded[k], weights[k]) for k in weights)


def test_convert_accepts_a_plain_safetensors_state_dict(kit, tmp_path) -> None:
    from safetensors.torch import save_file

    weights = _weights(1)
    save_file(weights, str(tmp_path / "plain.safetensors"))
    assert _convert(kit, tmp_path / "plain.safetensors", tmp_path / "refiner.safetensors").exit_code == 0
    loaded = load_refiner(tmp_path / "refiner.safetensors").state_dict()
    assert all(torch.equal(loaded[k], weights[k]) for k in weights)


@pytest.mark.parametrize("fmt", ["torch-save", "raw-pickle"])
def test_malicious_pickle_is_refused_and_never_runs(kit, tmp_path, fmt) -> None:
    marker = tmp_path / "PWNED"
    payload = {"state_dict": _weights(), "extra": RunsACommand(marker)}
    source = tmp_path / "model.pth"
    if fmt == "torch-save":
        torch.save(payload, source)
    else:
        source.write_bytes(pickle.dumps(payload))
    result = _convert(kit, source, tmp_path / "refiner.safetensors")
    assert not marker.exists(), "unpickling ran the embedded command"
    assert isinstance(result.exception, SystemExit) and result.exit_code == 2, result.output
    said = _said(result)
    assert "model.pth: refused" in said and "arbitrary code" in said and "torch.save(model.state_dict(), path)" in said
    assert "GLOBAL posix.system" in said or "Unsupported operand" in said  # what the unpickler refused
    assert not (tmp_path / "refiner.safetensors").exists()


CONVERT_ERRORS = {
    "non-tensor-entry": (lambda p: torch.save({"stem.weight": [1.0, 2.0]}, p), ("'stem.weight'", "not a tensor")),
    "not-a-dict": (lambda p: torch.save(torch.zeros(3), p), ("holds a Tensor, not a state dict",)),
    "garbage": (lambda p: p.write_bytes(b"definitely not torch"), ("not a torch.save file",)),
    "empty": (lambda p: p.write_bytes(b""), ("not a readable PyTorch weights file", "truncated")),
    "wrong-channels": (
        lambda p: torch.save(_weights(channels=3), p),
        ("'stem.weight' has shape (8, 3, 3, 3), the refiner expects (8, 1, 3, 3)", "--channels"),
    ),
    "missing-keys": (
        lambda p: torch.save({k: v for k, v in _weights().items() if not k.startswith("head")}, p),
        ("missing head.bias, head.weight",),
    ),
}


@pytest.mark.parametrize("make, fragments", CONVERT_ERRORS.values(), ids=list(CONVERT_ERRORS))
def test_convert_explains_what_is_wrong(kit, tmp_path, make, fragments) -> None:
    source = tmp_path / "weights.pt"
    make(source)
    result = _convert(kit, source, tmp_path / "refiner.safetensors")
    assert isinstance(result.exception, SystemExit) and result.exit_code == 2, result.output
    said = _said(result)
    assert "weights.pt" in said and all(f in said for f in fragments), said
    assert not (tmp_path / "refiner.safetensors").exists()


def test_convert_refuses_bad_arguments(kit, tmp_path) -> None:
    torch.save(_weights(), tmp_path / "weights.pt")
    cases = [
        (["convert", str(tmp_path / "nowhere.pt"), str(tmp_path / "o.safetensors"), "--refiner", "simgan-resnet"],
         "does not exist"),
        (["convert", str(tmp_path / "weights.pt"), str(tmp_path / "o.pt"), "--refiner", "simgan-resnet"],
         "must be a .safetensors file"),
        (["convert", str(tmp_path / "weights.pt"), str(tmp_path / "o.safetensors"), "--refiner", "simgan-resnt"],
         "Did you mean 'simgan-resnet'"),
        (["convert", str(tmp_path / "weights.pt"), str(tmp_path / "o.safetensors"), "--refiner", "simgan-resnet",
          "--set", "featurs=8"], "'featurs'"),
        (["convert", str(tmp_path / "weights.pt"), str(tmp_path / "o.safetensors"), "--refiner", "simgan-resnet",
          "--set", "features"], "KEY=VALUE"),
    ]  # fmt: skip
    for args, fragment in cases:
        result = kit.invoke(args)
        assert isinstance(result.exception, SystemExit) and result.exit_code == 2, result.output
        assert fragment in _said(result), (args, result.output)


def test_pickle_refiner_is_refused_with_a_conversion_command_that_works(kit, tmp_path, folders) -> None:
    synthetic, _ = folders
    torch.save(_weights(), tmp_path / "model.pt")
    refused = kit.invoke(["refine", str(tmp_path / "model.pt"), str(synthetic), str(tmp_path / "refined"), "--quiet"])
    assert refused.exit_code == 2 and "Traceback" not in refused.output
    said = _said(refused)
    assert "unpickling can run arbitrary code" in said
    command = said.split("Convert it with '", 1)[1].split("'", 1)[0]
    words = shlex.split(command.replace("NAME", "simgan-resnet"))
    assert words[:2] == ["refinekit", "convert"]
    assert kit.invoke([*words[1:], *SMALL_SET, "--height", "16", "--width", "20"]).exit_code == 0
    refined = kit.invoke(["refine", str(tmp_path / "model.safetensors"), str(synthetic), str(tmp_path / "refined"), "--quiet"])
    assert refined.exit_code == 0, refined.output
    assert "Refined 4 images" in _said(refined)


def test_refiner_for_other_channels_is_refused_by_refine(kit, tmp_path, folders) -> None:
    synthetic, _ = folders
    torch.save(_weights(), tmp_path / "gray.pt")
    assert _convert(kit, tmp_path / "gray.pt", tmp_path / "gray.safetensors").exit_code == 0
    result = kit.invoke(["refine", str(tmp_path / "gray.safetensors"), str(synthetic), str(tmp_path / "out"), "--channels", "3"])
    assert isinstance(result.exception, SystemExit) and result.exit_code == 2, result.output
    assert "gray.safetensors" in _said(result) and "1-channel" in _said(result) and "3-channel" in _said(result)


# -- the source itself ----------------------------------------------------------------------
def _python_files() -> list[Path]:
    folders = [ROOT / "refinekit", *(p for p in (ROOT / "plugins").glob("*/refinekit_*"))]
    return sorted(f for folder in folders for f in folder.rglob("*.py"))


def _call_name(node: ast.Call) -> str:
    func = node.func
    parts = []
    while isinstance(func, ast.Attribute):
        parts.append(func.attr)
        func = func.value
    if isinstance(func, ast.Name):
        parts.append(func.id)
    return ".".join(reversed(parts))


def _keyword(node: ast.Call, name: str) -> ast.expr | None:
    return next((k.value for k in node.keywords if k.arg == name), None)


def test_no_code_path_unpickles_or_evaluates_data() -> None:
    """Configs and metadata are JSON or TOML; weights are safetensors or torch.load(weights_only=True)."""
    files = _python_files()
    assert len(files) > 20 and any(f.name == "convert.py" for f in files)
    problems = []
    for file in files:
        tree = ast.parse(file.read_text(), filename=str(file))
        for node in ast.walk(tree):
            where = f"{file.relative_to(ROOT)}:{getattr(node, 'lineno', '?')}"
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                modules = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
                problems += [f"{where} imports {m}" for m in modules if m.split(".")[0] in ("yaml", "dill", "marshal", "shelve", "joblib")]
            if not isinstance(node, ast.Call):
                continue
            name = _call_name(node)
            builtin = isinstance(node.func, ast.Name) and node.func.id in ("eval", "exec", "compile", "__import__")
            if builtin or name.endswith(("pickle.load", "pickle.loads", "Unpickler")):
                problems.append(f"{where} calls {name}")
            if name.endswith("torch.load"):
                flag = _keyword(node, "weights_only")
                if not (isinstance(flag, ast.Constant) and flag.value is True):
                    problems.append(f"{where} calls torch.load without weights_only=True")
            if name.endswith("np.load") or name.endswith("numpy.load"):
                flag = _keyword(node, "allow_pickle")
                if flag is not None and not (isinstance(flag, ast.Constant) and flag.value is False):
                    problems.append(f"{where} calls np.load with allow_pickle")
    assert not problems, problems
