"""`hf-tip update`: folders of known classes add examples, other folders add classes; the output equals the same
live update in Python, and a non-empty output folder is refused."""

from __future__ import annotations

import copy

import pytest
import torch
from conftest import make_images

from hf_tip import TipAdapterForImageClassification
from hf_tip.cli import main


@pytest.fixture
def saved(adapter, tmp_path):
    folder = tmp_path / "model"
    adapter.save_pretrained(folder)
    return folder


@pytest.fixture
def new_folders(tmp_path):
    root = tmp_path / "new"
    for folder, label, seed in (("green_circle", 1, 3), ("yellow dots", 0, 4)):
        (root / folder).mkdir(parents=True)
        for i, image in enumerate(make_images([label, label], seed=seed)):
            image.save(root / folder / f"{i}.png")
    return root


def test_update_adds_examples_and_classes(adapter, saved, new_folders, tmp_path, capsys):
    out = tmp_path / "out"
    argv = [str(saved), "--train_dir", str(new_folders), "--output_dir", str(out), "--disable_tqdm"]
    assert main(["update", *argv]) == 0
    printed = capsys.readouterr().out
    assert "green_circle/: 2 image(s) -> class 'green circle'" in printed
    assert "yellow dots/: 2 image(s) -> a NEW class" in printed
    updated = TipAdapterForImageClassification.from_pretrained(out)
    assert updated.config.id2label[3] == "yellow dots" and updated.config.cache_size == 10
    expected = copy.deepcopy(adapter)
    from PIL import Image

    def load(folder):
        return [Image.open(new_folders / folder / f"{i}.png").convert("RGB") for i in range(2)]

    expected.add_examples(load("green_circle"), [1, 1])
    expected.add_classes(["yellow dots"], load("yellow dots"))
    probe = torch.randn(3, 16)
    torch.testing.assert_close(updated(image_embeds=probe).logits, expected(image_embeds=probe).logits)


def test_update_refuses_a_non_empty_output_dir(saved, new_folders, capsys):
    argv = [str(saved), "--train_dir", str(new_folders), "--output_dir", str(saved), "--disable_tqdm"]
    assert main(["update", *argv]) == 1
    assert "--overwrite_output_dir" in capsys.readouterr().err


def test_update_names_a_missing_train_dir(saved, tmp_path, capsys):
    argv = [str(saved), "--train_dir", str(tmp_path / "nope"), "--output_dir", str(tmp_path / "o")]
    assert main(["update", *argv]) == 1
    assert "nope" in capsys.readouterr().err
