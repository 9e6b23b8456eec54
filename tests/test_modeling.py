"""TipAdapterForImageClassification: the logits against independent computations, clear errors, exact save/load
round trips (buffer and fine-tuned keys), the saved safetensors, Auto classes and the image-classification pipeline."""

from __future__ import annotations

import copy

import pytest
import torch
from conftest import CLASS_NAMES, make_images
from safetensors import safe_open
from torch import nn
from transformers import AutoModelForImageClassification, pipeline

from hf_tip import TipAdapterForImageClassification


def _unit(x: torch.Tensor) -> torch.Tensor:
    return x / x.norm(dim=-1, keepdim=True)


def _features(output) -> torch.Tensor:
    return output if isinstance(output, torch.Tensor) else output.pooler_output


def _pixels(processor, seed: int = 9, labels: tuple[int, ...] = (0, 1, 2, 2)) -> torch.Tensor:
    return processor(images=make_images(list(labels), seed=seed), return_tensors="pt")["pixel_values"]


@torch.no_grad()
def _logits(model, **inputs) -> torch.Tensor:
    return model(**inputs).logits


# ------------------------------------------------------------------------------------------------------------ logits
@torch.no_grad()
def test_alpha_zero_gives_exactly_clips_zero_shot_logits(adapter, tiny_clip):
    clip, processor = tiny_clip
    pixel_values = _pixels(processor)
    # CLIP's zero-shot classifier, computed from the backbone alone
    templates = adapter.config.templates
    texts = [t.format(name.replace("_", " ")) for name in CLASS_NAMES for t in templates]
    tokens = processor.tokenizer(texts, padding=True, truncation=True, return_tensors="pt")
    text = _unit(_features(clip.get_text_features(**tokens))).view(len(CLASS_NAMES), len(templates), -1)
    weights = _unit(text.mean(dim=1))  # [C,D]
    image = _unit(_features(clip.get_image_features(pixel_values=pixel_values)))  # [B,D]
    expected = clip.logit_scale.exp() * (image @ weights.T)

    adapter.config.alpha = 0.0
    assert torch.equal(_logits(adapter, pixel_values=pixel_values), expected)
    torch.testing.assert_close(adapter.zero_shot_logits(image), expected, rtol=1e-6, atol=1e-6)
    adapter.config.alpha = 1.5
    assert not torch.allclose(_logits(adapter, pixel_values=pixel_values), expected)


def test_cache_term_equals_the_formula_on_planted_keys(adapter):
    dim = adapter.config.clip_config.projection_dim
    generator = torch.Generator().manual_seed(11)
    keys = torch.randn(7, dim, generator=generator)
    cache_labels = torch.tensor([2, 0, 1, 1, 0, 2, 2])
    adapter.set_cache(keys, cache_labels)
    adapter.config.alpha, adapter.config.beta = 2.25, 3.5
    embeds = torch.randn(5, dim, generator=generator)

    f, keys_n = _unit(embeds), _unit(keys)
    values = torch.eye(3)[cache_labels]  # dense one-hot L [NK,C]
    clip_logits = adapter.clip.logit_scale.exp() * (f @ adapter.zero_shot_weights.T)
    expected = clip_logits + 2.25 * (torch.exp(-3.5 * (1 - f @ keys_n.T)) @ values)
    torch.testing.assert_close(_logits(adapter, image_embeds=embeds), expected, rtol=1e-5, atol=1e-5)
    # the cache moves the prediction: a query equal to a key of class 1 scores class 1 higher than without it
    adapter.config.beta = 50.0
    query = keys[2:3]
    assert _logits(adapter, image_embeds=query)[0, 1] > adapter.zero_shot_logits(query)[0, 1] + 2.0


def test_pixel_values_and_image_embeds_agree(adapter, tiny_clip):
    _, processor = tiny_clip
    pixel_values = _pixels(processor)
    with torch.no_grad():
        embeds = adapter.get_image_features(pixel_values)
    torch.testing.assert_close(embeds.norm(dim=-1), torch.ones(len(embeds)))
    torch.testing.assert_close(
        _logits(adapter, pixel_values=pixel_values), _logits(adapter, image_embeds=embeds), rtol=1e-5, atol=1e-5
    )
    # unnormalised embeddings are normalised inside
    torch.testing.assert_close(
        _logits(adapter, image_embeds=7.0 * embeds), _logits(adapter, image_embeds=embeds), rtol=1e-5, atol=1e-5
    )


def test_loss_is_cross_entropy_of_the_logits(adapter):
    embeds = torch.randn(4, adapter.config.clip_config.projection_dim)
    labels = torch.tensor([0, 2, 1, 1])
    out = adapter(image_embeds=embeds, labels=labels)
    assert out.logits.shape == (4, 3)
    torch.testing.assert_close(out.loss, nn.functional.cross_entropy(out.logits, labels))
    assert adapter(image_embeds=embeds).loss is None


def test_only_the_keys_learn_after_enable_key_finetuning(adapter):
    adapter.enable_key_finetuning()
    assert isinstance(adapter.cache_keys, nn.Parameter)
    assert [name for name, p in adapter.named_parameters() if p.requires_grad] == ["cache_keys"]
    adapter(
        image_embeds=torch.randn(3, adapter.config.clip_config.projection_dim), labels=torch.tensor([0, 1, 2])
    ).loss.backward()
    assert adapter.cache_keys.grad is not None and adapter.cache_keys.grad.abs().sum() > 0
    assert all(p.grad is None for name, p in adapter.named_parameters() if name != "cache_keys")


# ------------------------------------------------------------------------------------------------------------ errors
def test_forward_needs_exactly_one_input(adapter, tiny_clip):
    embeds = torch.randn(2, adapter.config.clip_config.projection_dim)
    with pytest.raises(ValueError, match="exactly one of `pixel_values` and `image_embeds`"):
        adapter()
    with pytest.raises(ValueError, match="exactly one of `pixel_values` and `image_embeds`"):
        adapter(pixel_values=_pixels(tiny_clip[1]), image_embeds=embeds)


@pytest.mark.parametrize(
    ("labels", "match"),
    [
        (torch.tensor([0, 3]), "Labels \\[3\\] lie outside \\[0, 3\\)"),
        (torch.tensor([-1, 0]), "Labels \\[-1\\] lie outside"),
        (torch.tensor([0, 1, 2]), "`labels`.*shape \\[2\\].*got shape \\(3,\\)"),
        (torch.tensor([0.0, 1.0]), "`labels`.*integer class indices"),
    ],
)
def test_forward_rejects_bad_labels(adapter, labels, match):
    with pytest.raises(ValueError, match=match):
        adapter(image_embeds=torch.randn(2, adapter.config.clip_config.projection_dim), labels=labels)


def test_forward_rejects_bad_embeddings(adapter):
    dim = adapter.config.clip_config.projection_dim
    with pytest.raises(ValueError, match=f"`image_embeds` must have shape \\[B, {dim}\\], got \\(2, 8\\)"):
        adapter(image_embeds=torch.randn(2, 8))
    with pytest.raises(ValueError, match="`image_embeds` holds NaN or inf"):
        adapter(image_embeds=torch.full((2, dim), float("nan")))
    with pytest.raises(ValueError, match="`image_embeds` holds NaN or inf"):
        adapter(image_embeds=torch.full((2, dim), float("inf")))
    pixel_values = torch.zeros(1, 3, 30, 30)
    pixel_values[0, 1, 2, 3] = float("nan")
    with pytest.raises(ValueError, match="`pixel_values` holds NaN or inf"):
        adapter(pixel_values=pixel_values)


def test_an_empty_cache_is_reported(tiny_clip):
    clip, processor = tiny_clip
    model = TipAdapterForImageClassification.from_clip(clip, CLASS_NAMES, processor=processor)
    embeds = torch.randn(2, clip.config.projection_dim)
    with pytest.raises(ValueError, match="cache is empty.*build_cache"):
        model(image_embeds=embeds)
    with pytest.raises(ValueError, match="cache is empty"):
        model.search_hyperparameters(image_embeds=embeds, labels=torch.tensor([0, 1]))
    # zero-shot logits need no cache
    assert model.zero_shot_logits(embeds).shape == (2, 3)


def test_from_clip_errors(tiny_clip):
    clip, processor = tiny_clip
    with pytest.raises(ValueError, match="duplicated in `id2label`: \\['cat'\\]"):
        TipAdapterForImageClassification.from_clip(clip, ["cat", "dog", "cat"], processor=processor)
    with pytest.raises(ValueError, match="`templates`.*'a photo of a cat.'"):
        TipAdapterForImageClassification.from_clip(clip, ["cat"], templates=["a photo of a cat."], processor=processor)
    with pytest.raises(ValueError, match="`class_names`"):
        TipAdapterForImageClassification.from_clip(clip, [], processor=processor)
    with pytest.raises(ValueError, match="`processor=`"):
        TipAdapterForImageClassification.from_clip(clip, ["cat"])


def test_from_clip_on_a_missing_folder_explains_the_offline_fix(tmp_path):
    with pytest.raises(OSError, match="Could not load the CLIP backbone '.*nowhere': no such folder"):
        TipAdapterForImageClassification.from_clip(str(tmp_path / "nowhere"), ["cat", "dog"])
    with pytest.raises(OSError, match="(?s)Could not load the CLIP backbone.*pass a local folder holding a CLIP"):
        TipAdapterForImageClassification.from_clip(tmp_path, ["cat", "dog"])  # a folder without a checkpoint


def test_from_clip_on_a_folder_matches_from_clip_on_the_model(tiny_clip, tiny_clip_dir):
    clip, processor = tiny_clip
    from_folder = TipAdapterForImageClassification.from_clip(tiny_clip_dir, CLASS_NAMES)
    from_model = TipAdapterForImageClassification.from_clip(clip, CLASS_NAMES, processor=processor)
    torch.testing.assert_close(from_folder.zero_shot_weights, from_model.zero_shot_weights)
    assert from_folder.config.clip_name_or_path == str(tiny_clip_dir)
    assert from_folder.config.id2label == dict(enumerate(CLASS_NAMES))
    assert from_folder.config.label2id == {name: i for i, name in enumerate(CLASS_NAMES)}


# ----------------------------------------------------------------------------------------------------- save / load
def test_save_load_round_trip_is_exact(adapter, tiny_clip, tmp_path):
    _, processor = tiny_clip
    adapter.config.alpha, adapter.config.beta = 2.5, 6.0
    adapter.save_pretrained(tmp_path)
    names = {p.name for p in tmp_path.iterdir()}
    assert {"config.json", "model.safetensors", "processor_config.json", "tokenizer.json"} <= names
    assert {"configuration_tip_adapter.py", "modeling_tip_adapter.py", "cache.py", "features.py", "images.py"} <= names
    assert "data.py" not in names and "datasets.py" not in names  # dataset checks do not travel with the model

    loaded = TipAdapterForImageClassification.from_pretrained(tmp_path)
    pixel_values = _pixels(processor)
    assert torch.equal(_logits(loaded, pixel_values=pixel_values), _logits(adapter, pixel_values=pixel_values))
    for name in ("zero_shot_weights", "cache_keys", "cache_labels"):
        assert torch.equal(getattr(loaded, name), getattr(adapter, name)), name
    assert not isinstance(loaded.cache_keys, nn.Parameter)
    assert (loaded.config.alpha, loaded.config.beta, loaded.config.cache_size) == (2.5, 6.0, 6)
    assert loaded.config.id2label == adapter.config.id2label
    assert loaded.processor is not None
    assert torch.equal(
        loaded.processor(images=make_images([1]), return_tensors="pt")["pixel_values"],
        _pixels(processor, labels=(1,), seed=0),
    )

    auto = AutoModelForImageClassification.from_pretrained(tmp_path)  # registered by `import hf_tip`
    assert type(auto) is TipAdapterForImageClassification
    assert torch.equal(_logits(auto, pixel_values=pixel_values), _logits(adapter, pixel_values=pixel_values))


def test_fine_tuned_keys_reload_as_a_parameter(adapter, tmp_path):
    adapter.enable_key_finetuning()
    optimizer = torch.optim.AdamW([adapter.cache_keys], lr=1e-2)
    embeds = torch.randn(6, adapter.config.clip_config.projection_dim)
    for _ in range(3):
        optimizer.zero_grad()
        adapter(image_embeds=embeds, labels=torch.tensor([0, 1, 2, 0, 1, 2])).loss.backward()
        optimizer.step()
    adapter.save_pretrained(tmp_path)

    loaded = TipAdapterForImageClassification.from_pretrained(tmp_path)
    assert loaded.config.finetune_keys is True
    assert isinstance(loaded.cache_keys, nn.Parameter)
    assert torch.equal(loaded.cache_keys, adapter.cache_keys)
    assert torch.equal(_logits(loaded, image_embeds=embeds), _logits(adapter, image_embeds=embeds))
    loaded.enable_key_finetuning()  # continues training from the saved keys
    assert [name for name, p in loaded.named_parameters() if p.requires_grad] == ["cache_keys"]


def test_safetensors_holds_the_cache(adapter, tmp_path):
    adapter.enable_key_finetuning()
    adapter.save_pretrained(tmp_path)
    with safe_open(str(tmp_path / "model.safetensors"), framework="pt") as stored:
        names = set(stored.keys())
        for name in ("zero_shot_weights", "cache_keys", "cache_labels"):
            assert name in names, name
            assert torch.equal(stored.get_tensor(name), getattr(adapter, name).detach()), name
        assert stored.get_tensor("cache_labels").dtype == torch.long
    assert not [p for p in tmp_path.iterdir() if p.suffix in {".bin", ".pt", ".pkl", ".pickle"}]


# -------------------------------------------------------------------------------------------------------- pipeline
@pytest.fixture
def saved_folder(adapter, tmp_path):
    adapter.save_pretrained(tmp_path)
    return tmp_path


def test_pipeline_on_a_saved_folder(adapter, tiny_clip, saved_folder):
    _, processor = tiny_clip
    classifier = pipeline("image-classification", model=str(saved_folder))
    images = make_images([0, 1, 2], seed=3)
    probs = torch.softmax(
        _logits(adapter, pixel_values=processor(images=images, return_tensors="pt")["pixel_values"]), -1
    )

    single = classifier(images[0])
    assert [r["label"] for r in single] == [CLASS_NAMES[i] for i in probs[0].argsort(descending=True).tolist()]
    torch.testing.assert_close(torch.tensor([r["score"] for r in single]), probs[0].sort(descending=True).values)

    batch = classifier(images, top_k=2)
    assert len(batch) == 3 and all(len(result) == 2 for result in batch)
    for result, row in zip(batch, probs, strict=True):
        assert result[0]["label"] == CLASS_NAMES[int(row.argmax())]
        assert result[0]["score"] >= result[1]["score"]
        torch.testing.assert_close(torch.tensor(result[0]["score"]), row.max())
    assert len(classifier(images[1], top_k=1)) == 1


def test_a_zero_shot_model_round_trips_with_its_empty_cache(tiny_clip, tmp_path):
    clip, processor = tiny_clip
    model = TipAdapterForImageClassification.from_clip(clip, CLASS_NAMES, processor=processor)
    model.save_pretrained(tmp_path)
    loaded = TipAdapterForImageClassification.from_pretrained(tmp_path)
    assert loaded.cache_keys.shape == (0, clip.config.projection_dim) and loaded.config.cache_size == 0
    assert torch.equal(loaded.zero_shot_weights, model.zero_shot_weights)
    with pytest.raises(ValueError, match="cache is empty"):
        loaded(image_embeds=torch.randn(1, clip.config.projection_dim))


# ------------------------------------------------------------------------------------ frozen backbone, dtypes, geometry
def test_only_the_keys_are_trainable_after_from_pretrained(adapter, tmp_path):
    """transformers 5 loading turns `requires_grad` back on: from_pretrained freezes CLIP again."""
    adapter.save_pretrained(tmp_path / "tip")
    loaded = TipAdapterForImageClassification.from_pretrained(tmp_path / "tip")
    assert [n for n, p in loaded.named_parameters() if p.requires_grad] == []
    adapter.enable_key_finetuning().save_pretrained(tmp_path / "tip-f")
    loaded = TipAdapterForImageClassification.from_pretrained(tmp_path / "tip-f")
    assert [n for n, p in loaded.named_parameters() if p.requires_grad] == ["cache_keys"]
    embeds = torch.randn(3, loaded.cache_keys.shape[1])
    loaded(image_embeds=embeds, labels=torch.tensor([0, 1, 2])).loss.backward()
    assert loaded.cache_keys.grad is not None
    assert all(p.grad is None for n, p in loaded.named_parameters() if n != "cache_keys")


def test_search_runs_in_float32_on_a_half_precision_model(adapter):
    from hf_tip.models.cache import normalize
    from hf_tip.models.search import grid_search

    embeds, labels = torch.randn(12, adapter.cache_keys.shape[1]), torch.arange(12) % 3
    half = copy.deepcopy(adapter).to(torch.bfloat16)  # the fixture's CLIP is shared by the session
    expected = grid_search(
        normalize(embeds), labels, half.zero_shot_weights.float(), half.cache_keys.float(), half.cache_labels,
        half.clip.logit_scale.exp().float(), (7.0, 3.0), (20, 10),
    )  # fmt: skip
    assert half.search_hyperparameters(embeds, labels, search_step=(20, 10)) == expected
    assert half.config.alpha == expected["alpha"] and half.zero_shot_weights.dtype == torch.bfloat16


def test_cache_views_follow_the_processors_crop_size(adapter):
    """transformers 5 keeps `crop_size` as a SizeDict, not a dict: its height must still be read."""
    from transformers import CLIPImageProcessorPil, CLIPProcessor

    cropping = CLIPImageProcessorPil(crop_size={"height": 24, "width": 24})
    adapter.processor = CLIPProcessor(image_processor=cropping, tokenizer=adapter.processor.tokenizer)  # not shared
    assert not isinstance(adapter.processor.image_processor.crop_size, dict)
    assert adapter.image_geometry()[0] == 24


def test_set_cache_records_only_the_provenance_it_is_given_and_a_processorless_save_warns(adapter, tmp_path):
    keys, labels = torch.randn(12, adapter.cache_keys.shape[1]), torch.arange(12) % 3
    before = adapter.config.num_shots
    adapter.set_cache(keys, labels)  # 4 per class, but nothing is inferred from the counts (issue 10)
    assert adapter.config.num_shots == before and adapter.config.few_shot_seed is None
    adapter.set_cache(keys, labels, num_shots=4, few_shot_seed=7)
    assert (adapter.config.num_shots, adapter.config.few_shot_seed, adapter.config.cache_size) == (4, 7, 12)
    adapter.set_cache(keys[:5], labels[:5])
    assert adapter.config.num_shots == 4 and adapter.config.few_shot_seed is None
    with pytest.raises(ValueError, match="num_shots"):
        adapter.set_cache(keys, labels, num_shots=0)
    adapter.processor = None
    with pytest.warns(UserWarning, match="no processor"):
        adapter.save_pretrained(tmp_path / "bare")


def test_set_cache_refuses_zero_norm_keys_naming_the_tensor(adapter):
    keys, labels = torch.randn(6, adapter.feature_dim), torch.arange(6) % 3
    before = adapter.cache_keys.clone()
    zero_one = keys.clone().index_fill_(0, torch.tensor([4]), 0.0)
    for bad, rows in ((torch.zeros_like(keys), "[0, 1, 2, 3, 4, 5]"), (zero_one, "[4]"), (keys * 1e30, "[0, 1")):
        with pytest.raises(ValueError, match=r"Cache keys \[.*\] have zero norm.*`cache_keys`") as caught:
            adapter.set_cache(bad, labels)  # today: installed, and every key's logit is the same
        assert rows in str(caught.value)
    assert torch.equal(adapter.cache_keys, before)  # nothing installed
    adapter.set_cache(keys * 1e10, labels)
    torch.testing.assert_close(adapter.cache_keys, torch.nn.functional.normalize(keys, dim=-1))


def test_image_embeds_that_overflow_or_are_zero_are_refused_naming_the_tensor(adapter):
    embeds = torch.randn(3, adapter.feature_dim)
    for bad in (embeds * 1e30, torch.zeros_like(embeds)):  # today: uniform logits
        with pytest.raises(ValueError, match=r"`image_embeds` rows \[0, 1, 2\] have zero norm"):
            adapter(image_embeds=bad)
    assert adapter(image_embeds=embeds * 1e10).logits.std(-1).min() > 0


def test_cache_dtype_keeps_keys_in_half_precision_through_save_and_load(adapter, tmp_path):
    embeds = torch.nn.functional.normalize(torch.randn(64, adapter.feature_dim), dim=-1)
    reference = adapter(image_embeds=embeds).logits
    adapter.set_cache_dtype("bfloat16")
    assert adapter.cache_keys.dtype == torch.bfloat16 and adapter.config.cache_dtype == "bfloat16"
    assert adapter.zero_shot_weights.dtype == torch.float32
    logits = adapter(image_embeds=embeds).logits
    assert logits.dtype == torch.float32
    torch.testing.assert_close(logits, reference, rtol=0.05, atol=0.05)
    assert torch.equal(logits.argmax(-1), reference.argmax(-1))
    keys, labels = torch.randn(6, adapter.feature_dim), torch.arange(6) % 3
    assert adapter.set_cache(keys, labels).cache_keys.dtype == torch.bfloat16  # new keys keep the cache dtype
    adapter.save_pretrained(tmp_path / "bf16")
    loaded = TipAdapterForImageClassification.from_pretrained(tmp_path / "bf16")
    assert loaded.cache_keys.dtype == torch.bfloat16 and loaded.zero_shot_weights.dtype == torch.float32
    assert torch.equal(loaded(image_embeds=embeds).logits, adapter(image_embeds=embeds).logits)
    with pytest.raises(ValueError, match="cache_dtype"):
        loaded.enable_key_finetuning()
    with pytest.raises(ValueError, match="`cache_dtype` must be one of"):
        loaded.set_cache_dtype("int8")
    loaded.set_cache_dtype(None)
    assert loaded.cache_keys.dtype == torch.float32 and loaded.enable_key_finetuning().cache_keys.requires_grad


def test_transformers_trainer_fine_tunes_only_the_keys_through_forward(adapter, tmp_path):
    """`forward` takes no **kwargs (issue 10), and the Trainer still drives it: only `cache_keys` change."""
    from datasets import Dataset
    from transformers import Trainer, TrainingArguments

    generator = torch.Generator().manual_seed(0)
    embeds = torch.randn(12, adapter.feature_dim, generator=generator)
    data = Dataset.from_dict({"image_embeds": embeds.tolist(), "labels": (torch.arange(12) % 3).tolist()})
    adapter.enable_key_finetuning()
    keys, text = adapter.cache_keys.detach().clone(), adapter.zero_shot_weights.clone()
    clip = {k: v.clone() for k, v in adapter.clip.state_dict().items()}
    args = TrainingArguments(
        output_dir=str(tmp_path / "trainer"), per_device_train_batch_size=4, max_steps=3, learning_rate=0.01,
        report_to=[], save_strategy="no", use_cpu=True, logging_strategy="no",
    )  # fmt: skip
    Trainer(model=adapter, args=args, train_dataset=data).train()
    assert not torch.equal(adapter.cache_keys.detach(), keys)
    assert torch.equal(adapter.zero_shot_weights, text)
    assert all(torch.equal(v, clip[k]) for k, v in adapter.clip.state_dict().items())
    with pytest.raises(TypeError, match="unexpected keyword"):
        adapter(image_embeds=embeds, num_items_in_batch=4)
