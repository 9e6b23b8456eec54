"""What push uploads (an allowlist, never a symlink, never a secret) and what cards and saved folders record.

The push tests capture the commit through the local Hub of `tests/test_hub.py` (marker `hub`); the folder checks,
the staging and the card tests need no server.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import pytest
import test_hub
from huggingface_hub import CommitOperationAdd
from transformers import PreTrainedConfig

from hf_tip.hub.model_card import (
    TipAdapterModelCardData,
    clean_command,
    read_card_data,
    render_model_card,
    write_model_card,
)
from hf_tip.hub.push import check_saved_folder, missing_files, push_folder, select_upload, stage_upload

TOKEN = "hf_" + "AbCdEfGhIjKlMnOpQrStUvWxYz0123456789"  # token-shaped, fake
PLAIN_SECRET = "correct-horse-battery-staple"  # a secret that only its flag reveals
SECRET_COMMAND = f"hf-tip build --train_dir /home/alice/data/train --hub_token {PLAIN_SECRET} --note {TOKEN}"
CARD_DATA = {"eval_split": "test", "num_shots": 2, "results": {"tip_adapter_accuracy": 0.5}, "command": SECRET_COMMAND}
hub, commits, hub_api = test_hub.hub, test_hub.commits, test_hub.hub_api  # the local Hub's fixtures
ALLOWED = {
    "config.json",
    "model.safetensors",
    "README.md",
    "processor_config.json",
    "preprocessor_config.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "all_results.json",
}


def _hostile_folder(adapter, tmp_path: Path) -> tuple[Path, Path]:
    """A saved model plus everything that must never reach the Hub; returns (folder, the outside secret file)."""
    folder = tmp_path / "saved"
    adapter.card_data = dict(CARD_DATA)
    adapter.save_pretrained(folder)
    outside = tmp_path / "outside-secret.txt"
    outside.write_text(f"root:x:0:0 {TOKEN}\n")
    (folder / ".env").write_text(f"HF_TOKEN={TOKEN}\n")
    (folder / ".git-credentials").write_text(f"https://user:{TOKEN}@huggingface.co\n")
    (folder / ".huggingface").mkdir()
    (folder / ".huggingface" / "token").write_text(TOKEN)
    (folder / "extra.json").symlink_to(outside)
    (folder / "results.json").symlink_to(outside)  # an allowed name, but a symlink
    (folder / "optimizer.bin").write_bytes(b"optimizer state")
    (folder / "cat.png").write_bytes(b"\x89PNG\r\n")
    (folder / "train_features.safetensors").write_bytes(b"features")
    (folder / "head.pkl").write_bytes(b"cos\nsystem\n")
    (folder / "helper.py").write_text("import os\n")  # code auto_map does not name
    (folder / "checkpoints" / "epoch_0").mkdir(parents=True)
    (folder / "checkpoints" / "epoch_0" / "model.safetensors").write_bytes(b"x")
    results = {"command": SECRET_COMMAND, "hub_token": PLAIN_SECRET, "accuracy": 0.5}
    (folder / "all_results.json").write_text(json.dumps(results))
    return folder, outside


@pytest.mark.hub
def test_push_uploads_the_allowlist_only_and_logs_what_it_leaves_out(hub_api, commits, adapter, tmp_path, caplog):
    folder, _ = _hostile_folder(adapter, tmp_path)
    before = len(commits)
    with caplog.at_level(logging.WARNING, logger="hf_tip.hub.push"):
        push_folder(folder, "hf-tip-tests/hostile")
    assert len(commits) == before + 1
    operations = commits[-1][2]
    uploaded = {op.path_in_repo for op in operations if isinstance(op, CommitOperationAdd)}
    code = {name for name in uploaded if name.endswith(".py")}
    assert uploaded - code == ALLOWED
    assert {"modeling_tip_adapter.py", "configuration_tip_adapter.py", "cache.py"} <= code
    assert "helper.py" not in code
    for name in uploaded:  # no byte of any uploaded file holds a secret or the local data path
        data = (hub_api.repo_dir("hf-tip-tests/hostile") / name).read_bytes()
        assert TOKEN.encode() not in data and PLAIN_SECRET.encode() not in data, name
        assert b"/home/alice" not in data, name
    tree = set(hub_api.git("hf-tip-tests/hostile", "ls-files").splitlines())
    assert not tree & {".env", ".git-credentials", "extra.json", "results.json", "optimizer.bin", "cat.png"}
    log = caplog.text
    for name in (".env", ".git-credentials", ".huggingface/", "extra.json", "results.json", "optimizer.bin",
                 "cat.png", "train_features.safetensors", "head.pkl", "helper.py", "checkpoints/"):  # fmt: skip
        assert name in log, name
    assert "symbolic link" in log


@pytest.mark.hub
def test_push_refuses_a_symlinked_config_and_uploads_nothing(hub_api, commits, adapter, tmp_path):
    folder = tmp_path / "saved"
    adapter.save_pretrained(folder)
    outside = tmp_path / "passwd"
    outside.write_text((folder / "config.json").read_text())  # even a valid config is not followed
    (folder / "config.json").unlink()
    (folder / "config.json").symlink_to(outside)
    before = len(commits)
    with pytest.raises(ValueError, match=r"missing: config\.json.*config\.json \(a symbolic link: never followed\)"):
        push_folder(folder, "hf-tip-tests/symlinked")
    assert len(commits) == before


def test_staging_copies_regular_files_only_and_redacts_results(adapter, tmp_path):
    folder, outside = _hostile_folder(adapter, tmp_path)
    staging = tmp_path / "staging"
    staging.mkdir()
    files, left_out = stage_upload(folder, staging)
    staged = set(os.listdir(staging))
    assert "README.md" in files and "README.md" not in staged  # the card is rendered by the push, not copied
    assert not [p for p in staging.iterdir() if p.is_symlink()]
    assert {"extra.json", "results.json", ".env", "optimizer.bin"}.isdisjoint(staged)
    results = json.loads((staging / "all_results.json").read_text())
    assert results["hub_token"] == "<redacted>" and PLAIN_SECRET not in results["command"]
    assert TOKEN not in results["command"] and results["accuracy"] == 0.5
    assert PLAIN_SECRET in (folder / "all_results.json").read_text()  # the user's folder is not changed
    assert any(entry.startswith("results.json (a symbolic link") for entry in left_out)


def test_no_file_saved_holds_the_token(adapter, tmp_path):
    """A command with `--hub_token` and a token-shaped string in the card data: no file save_pretrained writes holds
    either, nor the local data path."""
    adapter.card_data = dict(CARD_DATA)
    adapter.save_pretrained(tmp_path / "out")
    for path in (tmp_path / "out").rglob("*"):
        data = path.read_bytes()
        assert TOKEN.encode() not in data and PLAIN_SECRET.encode() not in data, path
        assert b"/home/alice" not in data, path
    text = (tmp_path / "out" / "README.md").read_text()
    assert "--hub_token '<redacted>'" in text and "--train_dir train" in text


def test_clean_command_redacts_and_strips_local_paths():
    command = clean_command(f"hf-tip build --hub_token={PLAIN_SECRET} --output_dir /srv/x/out --model ./clips/b16")
    assert command == "hf-tip build '--hub_token=<redacted>' --output_dir out --model b16"
    assert clean_command("hf-tip build --note 'unbalanced") == "hf-tip build --note 'unbalanced"
    assert TOKEN not in clean_command(f"python x.py --token {TOKEN} 'a")


class TipXConfig(PreTrainedConfig):
    model_type = "tip-x"

    def __init__(self, gamma: float = 0.123456, num_shots: int = 4, backbone_name_or_path=None, **kwargs):
        self.gamma, self.num_shots, self.backbone_name_or_path = gamma, num_shots, backbone_name_or_path
        super().__init__(**kwargs)


def test_card_of_another_method_and_a_local_backbone(tmp_path):
    backbone = tmp_path / "my-siglip"
    backbone.mkdir()
    config = TipXConfig(backbone_name_or_path=str(backbone), id2label={0: "a", 1: "b"})
    card = render_model_card(config, {"eval_split": "test", "results": {"tip_x_accuracy": 0.912345}}, "u/m")
    assert "A **TIP-X**" in card.text and "| `gamma` | 0.1235 |" in card.text and "| TIP-X | 91.23 % |" in card.text
    assert "`my-siglip`" in card.text and str(tmp_path) not in str(card)
    assert card.data.base_model is None and "tip-x" in card.data.tags
    assert card.data.eval_results[0].metric_value == 0.9123
    assert "exp(-β" not in card.text  # the Tip-Adapter formula only on Tip-Adapter cards


def test_history_and_training_tables():
    config = TipXConfig(id2label={0: "a"})
    history = [{"epoch": 0, "train_loss": 1.234567, "validation_accuracy": 0.876543}]
    text = render_model_card(config, {"history": history, "training": {"learning_rate": 0.001}}).text
    assert "| epoch | train_loss | validation_accuracy |" in text and "| 0 | 1.235 | 87.65 % |" in text
    assert "| `learning_rate` | 0.001 |" in text
    for name in ("hf-tip", "transformers", "torch"):
        assert f"- {name}: " in text


def test_card_data_is_a_typed_card_data_with_a_dict_compatible_update():
    data = TipAdapterModelCardData.from_dict({"num_shots": 2})
    data.update(eval_split="test", results={"zero_shot_accuracy": 0.25})
    data.update({"command": "hf-tip build"})
    assert data.results == {"zero_shot_accuracy": 0.25} and data.command == "hf-tip build"
    with pytest.raises(ValueError, match=r"Unknown `card_data` key\(s\) \['nope'\]"):
        data.update(nope=1)
    with pytest.raises(ValueError, match=r"card_data\['history'\]"):
        TipAdapterModelCardData(history="epoch 1")
    with pytest.raises(ValueError, match="TipAdapterModelCardData"):
        TipAdapterModelCardData.from_dict(["num_shots", 2])


def test_a_card_of_the_first_release_is_still_read(adapter, tmp_path):
    """Cards that stored their data in an HTML comment (first release) re-render with their results."""
    legacy = (
        "---\nlibrary_name: transformers\n---\n\n<!-- hf_tip:generated: written by hf_tip. card_data="
        '{"eval_split": "test", "num_shots": 2, "results": {"tip_adapter_accuracy": 0.75}} -->\n# old\n'
    )
    assert read_card_data(legacy) == {"eval_split": "test", "num_shots": 2, "results": {"tip_adapter_accuracy": 0.75}}
    adapter.card_data = read_card_data(legacy)
    (tmp_path / "README.md").write_text(legacy)
    write_model_card(adapter, tmp_path)  # a generated card: replaced
    new = (tmp_path / "README.md").read_text()
    assert "| Tip-Adapter | 75.00 % |" in new and read_card_data(new)["results"] == {"tip_adapter_accuracy": 0.75}


# ------------------------------------------------------------------------------------------------- folder checks
def _write_config(folder: Path, **config) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(json.dumps(config))


@pytest.mark.parametrize("model_type", ["clip-zero-shot", "tip-x", "clip-adapter", "linear-probe", "gda"])
def test_other_hf_tip_model_types_are_checked_not_refused(tmp_path, model_type):
    _write_config(tmp_path, model_type=model_type)
    assert missing_files(tmp_path)[0] == "model.safetensors"


def test_unknown_model_type_and_broken_config_are_refused_naming_the_file(tmp_path):
    _write_config(tmp_path, model_type="bert")
    with pytest.raises(ValueError, match=r"config\.json describes a 'bert' model.*tip-adapter"):
        check_saved_folder(tmp_path)
    (tmp_path / "config.json").write_text("{not json")
    with pytest.raises(ValueError, match=r"config\.json is not a JSON file"):
        check_saved_folder(tmp_path)
    (tmp_path / "config.json").write_text("[1, 2]")
    with pytest.raises(ValueError, match=r"config\.json holds a list"):
        check_saved_folder(tmp_path)


def test_adapter_only_save_needs_config_weights_and_image_processor(tmp_path):
    _write_config(tmp_path, model_type="tip-adapter", save_backbone=False)
    (tmp_path / "model.safetensors").write_bytes(b"x")
    assert missing_files(tmp_path) == ["processor_config.json or preprocessor_config.json"]
    (tmp_path / "preprocessor_config.json").write_text("{}")
    assert missing_files(tmp_path) == []
    check_saved_folder(tmp_path)
    _write_config(tmp_path, model_type="tip-adapter")  # a full save needs the tokenizer and the code
    missing = missing_files(tmp_path)
    assert "tokenizer_config.json" in missing and any(m.startswith("config.json: auto_map") for m in missing)


def test_select_upload_takes_shards_and_named_code_only(tmp_path):
    auto_map = {"AutoConfig": "configuration_x.XConfig", "AutoModelForImageClassification": "other/repo--m.M"}
    _write_config(tmp_path, model_type="gda", auto_map=auto_map)
    (tmp_path / "configuration_x.py").write_text("from .util_x import f\n")
    (tmp_path / "util_x.py").write_text("f = 1\n")
    (tmp_path / "stray.py").write_text("")
    for name in ("model-00001-of-00002.safetensors", "model-evil-of-x.safetensors", "thumbnails.safetensors"):
        (tmp_path / name).write_bytes(b"x")
    files, left_out = select_upload(tmp_path)
    assert files == [
        "config.json",
        "configuration_x.py",
        "model-00001-of-00002.safetensors",
        "thumbnails.safetensors",
        "util_x.py",
    ]
    assert any(entry.startswith("stray.py (code") for entry in left_out)
    assert any(entry.startswith("model-evil-of-x.safetensors") for entry in left_out)
