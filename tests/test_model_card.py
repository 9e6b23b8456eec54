"""Model cards: Hub metadata that huggingface_hub parses back (model-index with the measured accuracies), the prose,
validation of `card_data`, and never overwriting a README.md that hf_tip did not generate."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import pytest
from conftest import CLASS_NAMES
from huggingface_hub import ModelCard, metadata_load
from huggingface_hub.repocard_data import model_index_to_eval_results

from hf_tip import TipAdapterConfig
from hf_tip.hub.model_card import is_generated, read_card_data, render_model_card, validate_card_data

ROOT = Path(__file__).resolve().parents[1]
CARD_DATA = {
    "dataset_name": "blanchon/EuroSAT_RGB",
    "eval_split": "test",
    "num_shots": 2,
    "results": {"zero_shot_accuracy": 0.375, "tip_adapter_accuracy": 0.625, "tip_adapter_f_accuracy": 0.8125},
    "command": "hf-tip build --dataset_name blanchon/EuroSAT_RGB --num_shots 2 --note '<!-- not a comment -->'",
}


def _config(**kwargs) -> TipAdapterConfig:
    names = ["Annual Crop Land", "Forest", "River"]
    defaults = dict(
        id2label=dict(enumerate(names)),
        label2id={n: i for i, n in enumerate(names)},
        alpha=2.0,
        beta=5.55,
        num_shots=16,
        cache_size=48,
        templates=["a centered satellite photo of {}."],
        clip_name_or_path="openai/clip-vit-base-patch16",
    )
    return TipAdapterConfig(**{**defaults, **kwargs})


def test_saved_card_parses_as_hub_metadata_with_model_index(adapter, tmp_path):
    adapter.card_data = dict(CARD_DATA)
    adapter.save_pretrained(tmp_path)
    meta = metadata_load(tmp_path / "README.md")
    assert meta["library_name"] == "transformers" and meta["pipeline_tag"] == "image-classification"
    assert {"tip-adapter", "clip", "few-shot"} <= set(meta["tags"])
    assert meta["datasets"] == ["blanchon/EuroSAT_RGB"] and meta["license"] == "apache-2.0"
    assert "base_model" not in meta  # the fixture's CLIP has no Hub id

    name, results = model_index_to_eval_results(meta["model-index"])
    assert name == tmp_path.name
    got = {r.metric_name: r.metric_value for r in results}
    assert got == {
        "Zero-shot CLIP accuracy": 0.375,
        "Tip-Adapter accuracy (2-shot)": 0.625,
        "Tip-Adapter-F accuracy (2-shot)": 0.8125,
    }
    for result in results:
        assert (result.task_type, result.metric_type) == ("image-classification", "accuracy")
        assert (result.dataset_type, result.dataset_split) == ("blanchon/EuroSAT_RGB", "test")

    card = ModelCard.load(tmp_path / "README.md")
    assert len(card.data.eval_results) == 3
    text = card.text
    for name in CLASS_NAMES:
        assert name in text
    for snippet in (
        "| `alpha` | 1.5 |",
        "| method | Tip-Adapter (`model_type: tip-adapter`) |",
        "| `beta` | 4 |",
        "| shots per class | 2 |",
        "`art of the {}.`",
        "| Tip-Adapter-F | 81.25 % |",
        "Accuracy on the `test` split",
        CARD_DATA["command"],
        "trust_remote_code=True",
        "exp(-β · (1 - f Fᵀ))",
        "@inproceedings{zhang2022tip",
    ):
        assert snippet in text, snippet


def test_card_data_round_trips_through_the_generated_mark(adapter, tmp_path):
    """The card stores its `card_data` in its mark (escaped: the command holds `-->`), for `hf-tip push` to re-render."""
    adapter.card_data = dict(CARD_DATA)
    adapter.save_pretrained(tmp_path)
    text = (tmp_path / "README.md").read_text()
    assert is_generated(text)
    stored = read_card_data(text)
    assert set(stored.pop("framework_versions")) >= {"hf-tip", "transformers", "torch"}
    assert stored == validate_card_data(CARD_DATA)
    assert read_card_data("# a card of my own\n") is None


def test_base_model_only_for_a_hub_id(tiny_clip_dir):
    card = render_model_card(_config(), {}, model_id="user/tip-eurosat")
    assert card.data.base_model == "openai/clip-vit-base-patch16"
    assert "https://huggingface.co/openai/clip-vit-base-patch16" in card.text
    assert render_model_card(_config(clip_name_or_path=str(tiny_clip_dir))).data.base_model is None
    for folder in ("./tinyclip", "../clips/tinyclip", "a/b/c"):  # relative folders that need not exist from here
        assert render_model_card(_config(clip_name_or_path=folder)).data.base_model is None, folder


def test_card_without_results_has_no_model_index():
    card = render_model_card(_config(), {"command": "python build.py"}, model_id="user/tip")
    assert card.data.eval_results is None and "model-index" not in card.data.to_dict()
    assert "No evaluation was recorded" in card.text and "python build.py" in card.text
    assert "| shots per class | 16 |" in card.text  # falls back to the config


def test_card_says_results_on_the_search_split_are_optimistic():
    data = {"eval_split": "validation", "results": {"tip_adapter_accuracy": 0.5}}
    text = render_model_card(_config(), data).text
    assert "chosen on this same split" in text and "optimistic" in text
    assert "optimistic" not in render_model_card(_config(), {**data, "eval_split": "test"}).text


def test_tip_adapter_f_card_names_the_variant():
    text = render_model_card(_config(finetune_keys=True)).text
    assert (
        "A **Tip-Adapter-F**" in text
        and "tip-adapter-f" in render_model_card(_config(finetune_keys=True)).data.tags
        and "**Tip-Adapter-F**" in text
    )


@pytest.mark.parametrize(
    "card_data, match",
    [
        ({"dataset": "x"}, r"Unknown `card_data` key\(s\) \['dataset'\]"),
        ({"eval_split": "test", "results": {"tip_adapter_accuracy": 1.5}}, r"\['tip_adapter_accuracy'\].*\[0, 1\]"),
        ({"eval_split": "test", "results": {"tip_accuracy": 0.5}}, "Unknown result 'tip_accuracy'"),
        ({"results": {"tip_adapter_accuracy": 0.5}}, "eval_split"),
        ({"eval_split": "train", "results": {"tip_adapter_accuracy": 0.5}}, "eval_split"),
        ({"num_shots": 0}, "num_shots"),
        ({"command": ["hf-tip", "build"]}, "command"),
    ],
)
def test_bad_card_data_is_refused_naming_it(card_data, match):
    with pytest.raises(ValueError, match=match):
        render_model_card(_config(), card_data)


def test_a_users_readme_is_kept_and_a_generated_one_is_refreshed(adapter, tmp_path):
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "README.md").write_text("# My card\n")
    with pytest.warns(UserWarning, match="not generated by hf_tip; it is kept"):
        adapter.save_pretrained(mine)
    assert (mine / "README.md").read_text() == "# My card\n"
    assert (mine / "config.json").is_file()  # the model itself was saved

    generated = tmp_path / "generated"
    adapter.save_pretrained(generated)
    adapter.config.alpha = 2.75
    adapter.save_pretrained(generated)
    assert "| `alpha` | 2.75 |" in (generated / "README.md").read_text()


def test_template_ships_inside_the_package():
    template = resources.files("hf_tip") / "hub" / "model_card_template.md"
    assert template.is_file() and "{{ card_data }}" in template.read_text(encoding="utf-8")


def test_example_card_in_model_cards_parses():
    card = ModelCard.load(ROOT / "model_cards" / "example" / "README.md")
    assert card.data.library_name == "transformers" and card.data.eval_results
    assert is_generated(card.content)
