"""The built wheel is complete: every module, the package data, the console script and the extras, installed apart
from this checkout (`scripts/check_wheel.sh` installs it with its dependencies into a clean venv)."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from email.parser import Parser
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(out), str(ROOT)],
        check=True, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    (found,) = out.glob("hf_tip-*.whl")
    return found


def test_the_wheel_holds_every_module_and_the_package_data(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    modules = {p.relative_to(ROOT).as_posix() for p in (ROOT / "hf_tip").rglob("*.py")}
    assert modules <= names, sorted(modules - names)
    assert {"hf_tip/metrics/accuracy.py", "hf_tip/hub/model_card_template.md"} <= names
    assert not [n for n in names if n.startswith(("tests/", "benchmarks/", "examples/"))]


def test_the_wheel_declares_its_extras_and_console_script(wheel):
    archive = zipfile.ZipFile(wheel)
    (meta,) = [n for n in archive.namelist() if n.endswith(".dist-info/METADATA")]
    metadata = Parser().parsestr(archive.read(meta).decode())
    assert {"demo", "app", "compare"} <= set(metadata.get_all("Provides-Extra"))
    requires = metadata.get_all("Requires-Dist")
    assert any(r.startswith("torch") for r in requires) and any("gradio" in r and "app" in r for r in requires)
    (entry,) = [n for n in archive.namelist() if n.endswith(".dist-info/entry_points.txt")]
    assert "hf-tip = hf_tip.cli:main" in archive.read(entry).decode()


CHILD = """
import sys
sys.path.insert(0, sys.argv[1])
import hf_tip, hf_tip.cli
assert hf_tip.__file__.startswith(sys.argv[1]), hf_tip.__file__
from transformers import pipeline
from hf_tip import TipAdapterForImageClassification
from hf_tip.backbones import random_clip
from hf_tip.pipeline.evaluation import load_accuracy
import torch
from PIL import Image
clip, processor = random_clip("tiny")
model = TipAdapterForImageClassification.from_clip(clip, ["cat", "dog"], processor=processor)
model.set_cache(torch.randn(4, model.feature_dim), torch.tensor([0, 0, 1, 1]))
model.save_pretrained(sys.argv[2])
assert (__import__("pathlib").Path(sys.argv[2]) / "README.md").read_text().count("pip install hf-tip")
image = Image.new("RGB", (40, 40), (120, 30, 200))
print("LABEL", pipeline("image-classification", model=sys.argv[2])(image)[0]["label"])
print("ACC", load_accuracy().compute(predictions=[1, 0], references=[1, 1])["accuracy"])
try:
    hf_tip.cli.main(["--help"])
except SystemExit as exit:
    assert exit.code == 0
"""


def test_the_installed_wheel_runs_apart_from_the_checkout(wheel, tmp_path):
    target = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(target), str(wheel)],
        check=True, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    result = subprocess.run(
        [sys.executable, "-c", CHILD, str(target), str(tmp_path / "model")],
        cwd=tmp_path, capture_output=True, text=True, timeout=300, env={"PATH": "/usr/bin:/bin", "HF_HUB_OFFLINE": "1"},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    assert "LABEL" in result.stdout and "ACC 0.5" in result.stdout
    assert "build" in result.stdout and "compare" in result.stdout  # the --help lists the commands
