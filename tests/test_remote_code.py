"""A saved folder works where `hf_tip` is not importable: `trust_remote_code=True` loads the code copied next to the
weights. Checked in a real subprocess in which `import hf_tip` (and `import datasets`) fail."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import torch
from conftest import make_images
from safetensors.torch import save_file
from transformers.dynamic_module_utils import get_imports, get_relative_import_files

import hf_tip
from hf_tip.models import modeling_tip_adapter

# What the copied code may import at module level (transformers checks these before loading remote code).
ALLOWED = {"torch", "numpy", "PIL", "safetensors", "tqdm", "transformers", "__future__"}

CHILD = textwrap.dedent(
    """
    import sys

    sys.modules["hf_tip"] = None  # `import hf_tip` now raises ImportError
    sys.modules["datasets"] = None  # and so does `import datasets`: the remote code must not need it
    import json

    import torch
    from PIL import Image
    from safetensors.torch import load_file
    from transformers import AutoModelForImageClassification, pipeline

    try:
        import hf_tip  # noqa: F401
    except ImportError:
        pass
    else:
        raise SystemExit("hf_tip is importable in the child")

    buffer_dir, finetuned_dir, data_path, image_path, resave_dir = sys.argv[1:]
    reference = load_file(data_path)
    report = {}
    for name, folder in (("buffer", buffer_dir), ("finetuned", finetuned_dir)):
        model = AutoModelForImageClassification.from_pretrained(folder, trust_remote_code=True)
        with torch.no_grad():
            logits = model(pixel_values=reference["pixel_values"]).logits
        report[name] = {
            "module": type(model).__module__,
            "equal": torch.equal(logits, reference[name]),
            "max_diff": (logits - reference[name]).abs().max().item(),
            "keys_are_parameter": isinstance(model.cache_keys, torch.nn.Parameter),
            "has_processor": model.processor is not None,
        }
    model.save_pretrained(resave_dir)  # saving works without hf_tip too (no model card)
    again = AutoModelForImageClassification.from_pretrained(resave_dir, trust_remote_code=True)
    with torch.no_grad():
        report["resaved_equal"] = torch.equal(again(pixel_values=reference["pixel_values"]).logits, reference["finetuned"])
    classifier = pipeline("image-classification", model=buffer_dir, trust_remote_code=True)
    report["pipeline"] = classifier(Image.open(image_path), top_k=2)
    print("REPORT" + json.dumps(report))
    """
)


def _code_files() -> list[Path]:
    """The module files the remote-code folder needs: the modeling and configuration files and their relative
    imports, recursively."""
    modeling = Path(modeling_tip_adapter.__file__)
    files = {Path(f) for f in get_relative_import_files(modeling)} | {modeling}
    return sorted(files)


def test_copied_code_imports_only_what_remote_users_have():
    files = _code_files()
    assert {f.name for f in files} >= {"configuration_tip_adapter.py", "cache.py", "features.py", "images.py"}
    allowed = ALLOWED | set(sys.stdlib_module_names)
    for file in files:
        extra = set(get_imports(file)) - allowed
        assert not extra, f"{file.name} imports {sorted(extra)} outside try/except; remote-code users may lack them"


def test_saved_folder_holds_every_code_file(adapter, tmp_path):
    adapter.save_pretrained(tmp_path)
    assert {f.name for f in _code_files()} <= {p.name for p in tmp_path.iterdir()}
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["auto_map"] == {
        "AutoConfig": "configuration_tip_adapter.TipAdapterConfig",
        "AutoModelForImageClassification": "modeling_tip_adapter.TipAdapterForImageClassification",
    }
    assert config["model_type"] == "tip-adapter"


def test_remote_code_loads_without_hf_tip(adapter, tiny_clip, tmp_path):
    _, processor = tiny_clip
    adapter.config.alpha, adapter.config.beta = 3.0, 5.0
    buffer_dir, finetuned_dir = tmp_path / "buffer", tmp_path / "finetuned"
    adapter.save_pretrained(buffer_dir)
    image = make_images([2], seed=21)[0]
    image.save(tmp_path / "query.png")
    pixel_values = processor(images=make_images([0, 1, 2], seed=20) + [image], return_tensors="pt")["pixel_values"]
    with torch.no_grad():
        buffer_logits = adapter(pixel_values=pixel_values).logits
        adapter.enable_key_finetuning()
        adapter.cache_keys.add_(0.05 * torch.randn_like(adapter.cache_keys))  # as if trained
        finetuned_logits = adapter(pixel_values=pixel_values).logits
    adapter.save_pretrained(finetuned_dir)
    assert not torch.equal(buffer_logits, finetuned_logits)
    save_file(
        {"pixel_values": pixel_values, "buffer": buffer_logits, "finetuned": finetuned_logits},
        tmp_path / "reference.safetensors",
    )
    (tmp_path / "child.py").write_text(CHILD)

    env = {k: v for k, v in os.environ.items() if k not in {"PYTHONPATH", "HF_HUB_OFFLINE"}}
    env.update(HF_HUB_OFFLINE="1", HF_MODULES_CACHE=str(tmp_path / "modules"), TOKENIZERS_PARALLELISM="false")
    args = [buffer_dir, finetuned_dir, tmp_path / "reference.safetensors", tmp_path / "query.png", tmp_path / "re"]
    result = subprocess.run(
        [sys.executable, str(tmp_path / "child.py"), *map(str, args)],
        cwd=tmp_path,
        env=env,
        stdin=subprocess.DEVNULL,  # a trust prompt would fail at once instead of waiting
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    assert "Do you wish to run the custom code" not in result.stdout + result.stderr
    report = json.loads(result.stdout.split("REPORT", 1)[1])

    for name in ("buffer", "finetuned"):
        assert report[name]["module"].startswith("transformers_modules."), report[name]
        assert report[name]["equal"], report[name]
        assert report[name]["has_processor"], report[name]
    assert report["buffer"]["keys_are_parameter"] is False
    assert report["finetuned"]["keys_are_parameter"] is True
    assert report["resaved_equal"]

    probs = torch.softmax(buffer_logits[-1], -1)
    top = probs.argsort(descending=True)[:2].tolist()
    assert [r["label"] for r in report["pipeline"]] == [adapter.config.id2label[i] for i in top]
    torch.testing.assert_close(torch.tensor([r["score"] for r in report["pipeline"]]), probs[top])


def test_hf_tip_registers_its_auto_classes_on_import():
    from transformers import AutoConfig, AutoModelForImageClassification

    config = AutoConfig.for_model("tip-adapter", id2label={0: "a", 1: "b"})
    assert type(config) is hf_tip.TipAdapterConfig
    assert (
        AutoModelForImageClassification._model_mapping[hf_tip.TipAdapterConfig]
        is hf_tip.TipAdapterForImageClassification
    )
