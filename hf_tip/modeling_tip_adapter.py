"""Tip-Adapter (Zhang et al., ECCV 2022): training-free few-shot adaptation of CLIP with a key-value cache."""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence

import torch
from torch import nn
from transformers import CLIPModel, CLIPProcessor, PreTrainedModel
from transformers import initialization as init
from transformers.modeling_outputs import ImageClassifierOutput

from .cache import normalize, tip_logits, zero_shot_logits
from .configuration_tip_adapter import TipAdapterConfig
from .data import OPENAI_CLIP_MEAN, OPENAI_CLIP_STD, check_columns, dataset_class_names, sample_few_shot
from .features import encode_images, iter_augmented_features, zero_shot_weights
from .search import grid_search


class TipAdapterPreTrainedModel(PreTrainedModel):
    config_class = TipAdapterConfig
    config: TipAdapterConfig
    base_model_prefix = "tip_adapter"
    main_input_name = "pixel_values"
    input_modalities = ("image",)

    def _init_weights(self, module):
        if isinstance(module, TipAdapterForImageClassification):
            init.zeros_(module.zero_shot_weights)
            init.zeros_(module.cache_keys)
            init.zeros_(module.cache_labels)


class TipAdapterForImageClassification(TipAdapterPreTrainedModel):
    r"""
    CLIP with a Tip-Adapter head: `logits = s · f Wᵀ + alpha · exp(-beta · (1 - f Fᵀ)) · L`.

    The model holds the frozen [`CLIPModel`], the zero-shot text weights `zero_shot_weights` `[C,D]`, the cache keys
    `cache_keys` `[NK,D]` (a buffer, or a parameter for Tip-Adapter-F) and the class of each key `cache_labels`
    `[NK]` — the one-hot cache values `L` `[NK,C]` stored as indices (see `cache_values`). All are saved in
    `model.safetensors`.

    Example:

    ```python
    >>> from hf_tip import TipAdapterForImageClassification
    >>> model = TipAdapterForImageClassification.from_clip(
    ...     "openai/clip-vit-base-patch16", class_names=["cat", "dog"], templates=["a photo of a {}."]
    ... )
    >>> model.build_cache(train_dataset, num_shots=16)  # a datasets.Dataset with image and label columns
    >>> model.search_hyperparameters(image_embeds=val_embeds, labels=val_labels)
    >>> logits = model(pixel_values=pixel_values).logits
    ```
    """

    def __init__(self, config: TipAdapterConfig, clip: CLIPModel | None = None):
        super().__init__(config)
        self.clip = clip if clip is not None else CLIPModel(config.clip_config)
        dim, size = config.clip_config.projection_dim, config.cache_size
        self.register_buffer("zero_shot_weights", torch.zeros(config.num_labels, dim), persistent=True)
        keys = torch.zeros(size, dim)
        if config.finetune_keys:
            self.cache_keys = nn.Parameter(keys)
        else:
            self.register_buffer("cache_keys", keys, persistent=True)
        self.register_buffer("cache_labels", torch.zeros(size, dtype=torch.long), persistent=True)
        self.processor: CLIPProcessor | None = None
        # What the model card reports (see `hf_tip.model_card`); filled by `hf-tip build` and fine-tuning runs.
        self.card_data: dict = {}
        self.post_init()
        self._freeze()

    # ----------------------------------------------------------------------------------------------- construction
    @classmethod
    def from_clip(
        cls,
        model_or_path: str | os.PathLike | CLIPModel,
        class_names: Sequence[str],
        templates: Sequence[str] | None = None,
        processor: CLIPProcessor | None = None,
        **config_kwargs,
    ) -> TipAdapterForImageClassification:
        r"""
        Build a zero-shot Tip-Adapter (empty cache) from a CLIP checkpoint.

        Args:
            model_or_path (`str`, `os.PathLike` or [`CLIPModel`]):
                A Hub id or local folder of a CLIP checkpoint, or a loaded `CLIPModel` (then pass `processor`).
            class_names (`list[str]`):
                One name per class, in label order; they become `id2label`. `_` reads as a space in prompts.
            templates (`list[str]`, *optional*):
                Prompt templates with one `{}`; defaults to the config's (`"a photo of a {}."`).
            processor ([`CLIPProcessor`], *optional*):
                Tokenizer and image processor; loaded from `model_or_path` when it is a path.
            config_kwargs:
                Any other [`TipAdapterConfig`] argument (`alpha`, `beta`, `num_shots`, ...).
        """
        name = None
        if isinstance(model_or_path, CLIPModel):
            clip = model_or_path
            if processor is None:
                raise ValueError(
                    "Pass `processor=` (a CLIPProcessor) with a loaded CLIPModel: prompts need its tokenizer."
                )
        else:
            name = str(model_or_path)
            if (os.path.isabs(name) or name.startswith(".")) and not os.path.isdir(name):
                raise OSError(f"Could not load the CLIP backbone {name!r}: no such folder.")
            try:
                clip = CLIPModel.from_pretrained(name)
                processor = processor if processor is not None else CLIPProcessor.from_pretrained(name)
            except OSError as error:
                raise OSError(
                    f"Could not load the CLIP backbone {name!r}: {error}\nWithout access to the Hugging Face Hub, pass "
                    "a local folder holding a CLIP checkpoint and its processor (`CLIPModel.save_pretrained` + "
                    "`CLIPProcessor.save_pretrained`) as the model name or path."
                ) from error
        class_names = [str(c) for c in class_names]
        if not class_names:
            raise ValueError("`class_names` must name at least one class.")
        config_kwargs.setdefault("clip_name_or_path", name or getattr(clip.config, "_name_or_path", None) or None)
        config = TipAdapterConfig(
            clip_config=clip.config.to_dict(),
            templates=list(templates) if templates is not None else None,
            id2label=dict(enumerate(class_names)),
            label2id={c: i for i, c in enumerate(class_names)},
            **config_kwargs,
        )
        model = cls(config, clip=clip)
        weights = zero_shot_weights(
            clip, processor.tokenizer, [c.replace("_", " ") for c in class_names], config.templates
        )
        model.zero_shot_weights.copy_(weights)
        model.processor = processor
        return model.to(clip.device).eval()

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path, *model_args, **kwargs):
        """Load a saved Tip-Adapter, and its processor (as `model.processor`) when the folder or repo has one."""
        model = super().from_pretrained(pretrained_model_name_or_path, *model_args, **kwargs)
        model._freeze()  # loading in transformers 5 makes every parameter trainable again
        # `trust_remote_code` travels on: the processor loader reads config.json, whose `auto_map` would otherwise
        # make transformers prompt for it again when the model was loaded as remote code.
        keys = ("revision", "cache_dir", "token", "local_files_only", "subfolder", "trust_remote_code")
        hub_kwargs = {k: kwargs[k] for k in keys if k in kwargs}
        try:
            model.processor = CLIPProcessor.from_pretrained(pretrained_model_name_or_path, **hub_kwargs)
        except (OSError, ValueError, TypeError):
            model.processor = None
        return model

    def save_pretrained(self, save_directory: str | os.PathLike, *args, push_to_hub: bool = False, **kwargs) -> None:
        """Save config, `model.safetensors`, the processor and (with `hf_tip` installed) a model card README.md;
        `push_to_hub=True` then uploads them with `push_to_hub` (`repo_id=` defaults to the folder's name)."""
        push_kwargs = {k: kwargs.pop(k) for k in ("repo_id", "commit_message", "create_pr", "private") if k in kwargs}
        super().save_pretrained(save_directory, *args, **kwargs)
        if not kwargs.get("is_main_process", True):
            return
        if self.processor is None:
            warnings.warn(
                f"The model has no processor (`model.processor` is None): {save_directory} gets no image processor or "
                "tokenizer files, so `pipeline(...)` cannot load it. Set `model.processor` to a CLIPProcessor first.",
                UserWarning,
                stacklevel=2,
            )
        else:
            self.processor.save_pretrained(save_directory)
            # preprocessor_config.json too: AutoImageProcessor and pipelines still probe it, and transformers 4 reads it
            self.processor.image_processor.save_pretrained(save_directory)
        try:  # the card renderer ships with hf_tip only; remote-code users save without a card
            from hf_tip.model_card import write_model_card
        except ImportError:
            write_model_card = None
        if write_model_card is not None:
            write_model_card(self, save_directory)
        if push_to_hub:
            repo_id = push_kwargs.pop("repo_id", os.path.basename(os.path.normpath(save_directory)))
            self.push_to_hub(repo_id, token=kwargs.get("token"), **push_kwargs)

    def push_to_hub(self, repo_id: str, **kwargs):
        """Upload config, weights, remote code, processor and the hf_tip model card to `repo_id` in one commit (see
        `hf_tip.hub.push_model`; transformers' own push would replace the card with a generic one). Returns the
        `CommitInfo`."""
        try:
            from hf_tip.hub import push_model
        except ImportError:  # remote-code users without hf_tip: transformers' push and its generic card
            return super().push_to_hub(repo_id, **kwargs)
        return push_model(self, repo_id, **kwargs)

    # ------------------------------------------------------------------------------------------------------ cache
    @property
    def num_classes(self) -> int:
        return self.zero_shot_weights.shape[0]

    @property
    def cache_values(self) -> torch.Tensor:
        """The one-hot cache values `L` [NK,C]."""
        return nn.functional.one_hot(self.cache_labels, self.num_classes).to(self.zero_shot_weights.dtype)

    def set_cache(self, keys: torch.Tensor, labels: torch.Tensor | Sequence[int]) -> TipAdapterForImageClassification:
        r"""
        Install precomputed cache entries.

        Args:
            keys (`torch.Tensor` of shape `[NK, D]`): image features of the few-shot set (normalised here).
            labels (`torch.LongTensor` of shape `[NK]`): the class of each key, in `[0, num_labels)`.
        """
        keys = torch.as_tensor(keys)
        labels = torch.as_tensor(labels)
        dim = self.zero_shot_weights.shape[1]
        if keys.ndim != 2 or keys.shape[0] == 0:
            raise ValueError(
                f"Cache keys must be a non-empty [NK, D] tensor; got shape {tuple(keys.shape)} (empty cache)."
            )
        if keys.shape[1] != dim:
            raise ValueError(f"Cache keys have dimension {keys.shape[1]}, but the backbone's projection dim is {dim}.")
        if not torch.isfinite(keys).all():
            raise ValueError("Cache keys hold NaN or inf values.")
        if labels.ndim != 1 or labels.shape[0] != keys.shape[0]:
            raise ValueError(
                f"Got {keys.shape[0]} keys but labels of shape {tuple(labels.shape)}; pass one label per key."
            )
        if labels.dtype.is_floating_point or labels.dtype == torch.bool:
            raise ValueError(f"Labels must be integer class indices, got dtype {labels.dtype}.")
        self._check_labels(labels)
        device = self.zero_shot_weights.device
        keys = normalize(keys.to(device=device, dtype=self.zero_shot_weights.dtype))
        if isinstance(self.cache_keys, nn.Parameter):
            self.cache_keys = nn.Parameter(keys.clone())
        else:
            self.cache_keys = keys.clone()
        self.cache_labels = labels.to(device=device, dtype=torch.long).clone()
        self.config.cache_size = keys.shape[0]
        self.config.few_shot_seed = None  # unknown provenance; build_cache records its sample's seed
        counts = torch.bincount(self.cache_labels, minlength=self.num_classes)
        if bool((counts == counts[0]).all()) and int(counts[0]) > 0:  # K shots of every class: the config says K
            self.config.num_shots = int(counts[0])
        return self

    def build_cache(
        self,
        images_or_dataset,
        labels: Sequence[int] | torch.Tensor | None = None,
        *,
        num_shots: int | None = None,
        augment_epochs: int | None = None,
        seed: int = 1,
        batch_size: int = 32,
        image_column: str = "image",
        label_column: str = "label",
        allow_fewer_shots: bool = False,
        show_progress: bool = True,
    ) -> TipAdapterForImageClassification:
        r"""
        Encode a few-shot set into the cache, as in the paper: `augment_epochs` passes over the images in a fixed
        order, each view a random resized crop (scale 0.5–1, bicubic) plus a random horizontal flip; the raw features
        are averaged over passes, then L2-normalised.

        Args:
            images_or_dataset (`datasets.Dataset` or `list[PIL.Image.Image]`):
                A dataset with an image and a label column, or a list of images (then pass `labels`).
            labels (`list[int]`, *optional*): the class of each image when a list is given.
            num_shots (`int`, *optional*):
                With a dataset, sample exactly this many examples per class first (seeded by `seed`).
            augment_epochs (`int`, *optional*): views per image; defaults to `config.augment_epochs`.
            seed (`int`, *optional*, defaults to 1): seeds the few-shot sampling and the augmentations.
        """
        if hasattr(images_or_dataset, "column_names"):
            dataset = images_or_dataset
            check_columns(dataset, image_column, label_column)
            names = dataset_class_names(dataset, label_column)
            if names is not None and len(names) != self.num_classes:
                raise ValueError(
                    f"The dataset has {len(names)} classes {names}, the model {self.num_classes} "
                    f"{list(self.config.id2label.values())}."
                )
            if num_shots is not None:
                class_names = [self.config.id2label[i] for i in range(self.num_classes)]
                picked = sample_few_shot(list(dataset[label_column]), num_shots, seed, class_names, allow_fewer_shots)
                dataset = dataset.select(picked)
            images, labels = list(dataset[image_column]), list(dataset[label_column])
        else:
            images = list(images_or_dataset)
            if labels is None or len(labels) != len(images):
                raise ValueError(
                    f"Pass one label per image: got {len(images)} images and {0 if labels is None else len(labels)} labels."
                )
        if not images:
            raise ValueError("No images to build the cache from (empty cache).")
        labels = torch.as_tensor(list(labels) if not isinstance(labels, torch.Tensor) else labels)
        self._check_labels(labels)
        epochs = self.config.augment_epochs if augment_epochs is None else augment_epochs
        if not isinstance(epochs, int) or epochs < 1:
            raise ValueError(f"`augment_epochs` must be an integer >= 1, got {epochs!r}.")

        size, mean, std = self._image_geometry()
        total = torch.zeros(len(images), self.zero_shot_weights.shape[1])
        for _, start, feats in iter_augmented_features(
            self.clip, images, epochs, size, mean, std, seed=seed, batch_size=batch_size, show_progress=show_progress
        ):
            total[start : start + feats.shape[0]] += feats  # raw features summed over passes, normalised below
        return self.set_augmented_cache(total, epochs, labels, num_shots=num_shots, seed=seed)

    def set_augmented_cache(
        self,
        summed_views: torch.Tensor,
        augment_epochs: int,
        labels: torch.Tensor | Sequence[int],
        *,
        num_shots: int | None = None,
        seed: int | None = None,
    ) -> TipAdapterForImageClassification:
        r"""
        Install keys made from augmented views, as the paper does: the raw features summed pass by pass, divided by
        the number of passes, then L2-normalised (by `set_cache`); records `augment_epochs` and, for a sampled
        few-shot set, `num_shots` and the sample's `few_shot_seed` in the config. `build_cache` and Tip-Adapter-F's
        sharded cache build both end here.

        Args:
            summed_views (`torch.FloatTensor` of shape `[NK, D]`): the sum over passes of the raw view features.
            augment_epochs (`int`): the number of passes summed.
            labels (`torch.LongTensor` of shape `[NK]`): the class of each key.
            num_shots (`int`, *optional*), seed (`int`, *optional*): the sampling that chose the few-shot set.
        """
        self.set_cache(summed_views / augment_epochs, labels)
        self.config.augment_epochs = augment_epochs
        if num_shots is not None:
            self.config.num_shots = num_shots
        self.config.few_shot_seed = seed if num_shots is not None else None
        return self

    def enable_key_finetuning(self) -> TipAdapterForImageClassification:
        """Make the cache keys a trainable `nn.Parameter` (Tip-Adapter-F); CLIP, the text weights and values stay frozen."""
        if not isinstance(self.cache_keys, nn.Parameter):
            keys = self.cache_keys.detach().clone()
            del self._buffers["cache_keys"]
            self.cache_keys = nn.Parameter(keys)
        self.config.finetune_keys = True
        self._freeze()
        return self

    # ---------------------------------------------------------------------------------------------------- inference
    def get_image_features(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """L2-normalised CLIP image features [B,D] of pixel values [B,3,H,W]."""
        return encode_images(self.clip, pixel_values)

    def zero_shot_logits(self, image_embeds: torch.Tensor) -> torch.Tensor:
        """CLIP's zero-shot logits [B,C] for image features [B,D]."""
        embeds = normalize(image_embeds.to(self.zero_shot_weights))
        return zero_shot_logits(embeds, self.zero_shot_weights, self.clip.logit_scale.exp())

    def forward(
        self,
        pixel_values: torch.Tensor | None = None,
        image_embeds: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        **kwargs,
    ) -> ImageClassifierOutput:
        r"""
        Args:
            pixel_values (`torch.FloatTensor` of shape `[B, 3, H, W]`, *optional*): images, as the processor makes them.
            image_embeds (`torch.FloatTensor` of shape `[B, D]`, *optional*): precomputed CLIP image features
                (normalised here). Pass exactly one of `pixel_values` and `image_embeds`.
            labels (`torch.LongTensor` of shape `[B]`, *optional*): class indices for the cross-entropy `loss`.

        Returns:
            [`ImageClassifierOutput`] with `logits` `[B, C]` and, given labels, `loss`.
        """
        if (pixel_values is None) == (image_embeds is None):
            raise ValueError("Pass exactly one of `pixel_values` and `image_embeds`.")
        if self.cache_keys.shape[0] == 0:
            raise ValueError("The cache is empty: call `build_cache(...)` or `set_cache(keys, labels)` first.")
        if pixel_values is not None:
            if not torch.isfinite(pixel_values).all():
                raise ValueError("`pixel_values` holds NaN or inf values.")
            image_embeds = encode_images(self.clip, pixel_values)
        else:
            if image_embeds.ndim != 2 or image_embeds.shape[-1] != self.zero_shot_weights.shape[1]:
                raise ValueError(
                    f"`image_embeds` must have shape [B, {self.zero_shot_weights.shape[1]}], got {tuple(image_embeds.shape)}."
                )
            if not torch.isfinite(image_embeds).all():
                raise ValueError("`image_embeds` holds NaN or inf values.")
            image_embeds = normalize(image_embeds)
        image_embeds = image_embeds.to(self.zero_shot_weights)
        logits = tip_logits(
            image_embeds,
            self.zero_shot_weights,
            self.cache_keys,
            self.cache_labels,
            self.clip.logit_scale.exp().to(image_embeds),
            self.config.alpha,
            self.config.beta,
        )
        loss = None
        if labels is not None:
            labels = torch.as_tensor(labels)
            if labels.shape != logits.shape[:1] or labels.dtype.is_floating_point or labels.dtype == torch.bool:
                raise ValueError(
                    f"`labels` must be integer class indices of shape [{logits.shape[0]}] (one per image), "
                    f"got shape {tuple(labels.shape)} and dtype {labels.dtype}."
                )
            self._check_labels(labels)
            loss = nn.functional.cross_entropy(logits, labels.to(logits.device))
        return ImageClassifierOutput(loss=loss, logits=logits)

    @torch.no_grad()
    def search_hyperparameters(
        self,
        image_embeds: torch.Tensor,
        labels: torch.Tensor,
        search_scale: tuple[float, float] | None = None,
        search_step: tuple[int, int] | None = None,
    ) -> dict[str, float]:
        r"""
        Grid-search `alpha` and `beta` on validation features, as in the paper, and write them into the config.

        Args:
            image_embeds (`torch.FloatTensor` of shape `[N, D]`): validation image features (normalised here).
            labels (`torch.LongTensor` of shape `[N]`): their classes.
            search_scale (`tuple[float, float]`, *optional*): `(beta_max, alpha_max)`; defaults to the config's.
            search_step (`tuple[int, int]`, *optional*): `(n_beta, n_alpha)`; defaults to the config's.

        Returns:
            `dict` with the chosen `alpha`, `beta` and their validation `accuracy` (ties go to the first (β, α)).
        """
        if self.cache_keys.shape[0] == 0:
            raise ValueError("The cache is empty: call `build_cache(...)` or `set_cache(keys, labels)` first.")
        labels = torch.as_tensor(labels)
        if image_embeds.ndim != 2 or image_embeds.shape[0] != labels.shape[0]:
            raise ValueError(f"Got {tuple(image_embeds.shape)} features for {tuple(labels.shape)} labels.")
        if not torch.isfinite(image_embeds).all():
            raise ValueError("`image_embeds` holds NaN or inf values.")
        self._check_labels(labels)
        # in float32 whatever the model's dtype: a half-precision grid and exp would change the choice
        embeds = normalize(image_embeds.to(device=self.zero_shot_weights.device, dtype=torch.float32))
        result = grid_search(
            embeds,
            labels.to(embeds.device),
            self.zero_shot_weights.float(),
            self.cache_keys.detach().float(),
            self.cache_labels,
            self.clip.logit_scale.exp().float(),
            tuple(search_scale or self.config.search_scale),
            tuple(search_step or self.config.search_step),
        )
        self.config.alpha, self.config.beta = result["alpha"], result["beta"]
        return result

    # ------------------------------------------------------------------------------------------------------ helpers
    def _freeze(self) -> None:
        """Only the cache keys of Tip-Adapter-F train: CLIP (and every buffer) stays frozen."""
        self.requires_grad_(False)
        if isinstance(self.cache_keys, nn.Parameter):
            self.cache_keys.requires_grad_(True)

    def _check_labels(self, labels: torch.Tensor) -> None:
        """Raise when a label lies outside [0, num_labels)."""
        if labels.numel() and (int(labels.min()) < 0 or int(labels.max()) >= self.num_classes):
            bad = sorted({int(v) for v in labels.flatten().tolist() if not 0 <= v < self.num_classes})
            raise ValueError(
                f"Labels {bad[:10]} lie outside [0, {self.num_classes}) for this model's {self.num_classes} classes."
            )

    def _image_geometry(self) -> tuple[int, tuple[float, ...], tuple[float, ...]]:
        """Crop size, mean and std of the image processor (OpenAI CLIP's without one)."""
        processor = getattr(self.processor, "image_processor", None)
        if processor is None:
            return self.config.clip_config.vision_config.image_size, OPENAI_CLIP_MEAN, OPENAI_CLIP_STD
        crop = getattr(processor, "crop_size", None)  # a dict in transformers 4, a SizeDict in 5
        size = crop.get("height") if isinstance(crop, dict) else getattr(crop, "height", None)
        return (
            size or self.config.clip_config.vision_config.image_size,
            tuple(processor.image_mean or OPENAI_CLIP_MEAN),
            tuple(processor.image_std or OPENAI_CLIP_STD),
        )


__all__ = ["TipAdapterForImageClassification", "TipAdapterPreTrainedModel"]
