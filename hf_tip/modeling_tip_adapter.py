"""Tip-Adapter (Zhang et al., ECCV 2022): training-free few-shot adaptation of CLIP with a key-value cache."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from .cache import normalize, tip_logits
from .configuration_tip_adapter import TipAdapterConfig
from .data import check_dataset, check_images, load_images, remap_labels, sample_few_shot
from .features import iter_augmented_features
from .modeling_zero_shot import ZeroShotForImageClassification
from .search import grid_search


class TipAdapterForImageClassification(ZeroShotForImageClassification):
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

    config_class = TipAdapterConfig
    config: TipAdapterConfig

    def _init_head(self, config: TipAdapterConfig, dim: int) -> None:
        keys = torch.zeros(config.cache_size, dim)
        if config.finetune_keys:
            self.cache_keys = nn.Parameter(keys)
        else:
            self.register_buffer("cache_keys", keys, persistent=True)
        self.register_buffer("cache_labels", torch.zeros(config.cache_size, dtype=torch.long), persistent=True)

    def _head_tensors(self) -> list[str]:
        return ["zero_shot_weights", "cache_keys", "cache_labels"]

    # ------------------------------------------------------------------------------------------------------ cache
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
        self.check_labels(labels)
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
        class_mapping: dict[str, str] | Sequence[str] | None = None,
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
            class_mapping (`dict[str, str]` or `list[str]`, *optional*):
                How a dataset's `ClassLabel` names map to the model's classes when they differ (see
                `hf_tip.data.align_labels`); by default they are matched by name (`_` as a space, ignoring case), so
                a dataset listing the model's classes in another order gets the right labels.
        """
        if hasattr(images_or_dataset, "column_names"):
            dataset = images_or_dataset
            class_names = [self.config.id2label[i] for i in range(self.num_classes)]
            label_map = check_dataset(
                dataset, class_names, image_column=image_column, label_column=label_column, class_mapping=class_mapping
            )
            labels = remap_labels(dataset[label_column], label_map)
            if num_shots is not None:
                picked = sample_few_shot(labels.tolist(), num_shots, seed, class_names, allow_fewer_shots)
                dataset, labels = dataset.select(picked), labels[picked]
            images = load_images(dataset, image_column)
        else:
            images = check_images(images_or_dataset)
            if labels is None or len(labels) != len(images):
                raise ValueError(
                    f"Pass one label per image: got {len(images)} images and {0 if labels is None else len(labels)} labels."
                )
        if not images:
            raise ValueError("No images to build the cache from (empty cache).")
        labels = torch.as_tensor(list(labels) if not isinstance(labels, torch.Tensor) else labels)
        self.check_labels(labels)
        epochs = self.config.augment_epochs if augment_epochs is None else augment_epochs
        if not isinstance(epochs, int) or epochs < 1:
            raise ValueError(f"`augment_epochs` must be an integer >= 1, got {epochs!r}.")

        size, mean, std = self.image_geometry()
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

    def fit(
        self,
        view_features: torch.Tensor,
        labels: torch.Tensor | Sequence[int],
        *,
        num_shots: int | None = None,
        seed: int | None = None,
    ) -> TipAdapterForImageClassification:
        """The training-free cache from raw few-shot view features [V,N,D] (views `0..V-1` of each image, as
        `features.iter_augmented_features` yields them) and labels [N]: `set_augmented_cache` of their pass-by-pass sum."""
        if view_features.ndim != 3:
            raise ValueError(f"`view_features` must have shape [V, N, D], got {tuple(view_features.shape)}.")
        total = torch.zeros_like(view_features[0])
        for view in view_features:  # summed pass by pass, then divided, as `build_cache` does
            total += view
        return self.set_augmented_cache(total, view_features.shape[0], labels, num_shots=num_shots, seed=seed)

    def enable_key_finetuning(self) -> TipAdapterForImageClassification:
        """Make the cache keys a trainable `nn.Parameter` (Tip-Adapter-F); CLIP, the text weights and values stay frozen."""
        if not isinstance(self.cache_keys, nn.Parameter):
            keys = self.cache_keys.detach().clone()
            del self._buffers["cache_keys"]
            self.cache_keys = nn.Parameter(keys)
        self.config.finetune_keys = True
        self._freeze()
        return self

    enable_training = enable_key_finetuning

    # ---------------------------------------------------------------------------------------------------- inference
    def head_logits(self, image_embeds: torch.Tensor) -> torch.Tensor:
        """Tip-Adapter logits [B,C] for L2-normalised features [B,D]: `s · f Wᵀ + alpha · exp(-beta (1 - f Fᵀ)) · L`."""
        return tip_logits(
            image_embeds,
            self.zero_shot_weights,
            self.cache_keys,
            self.cache_labels,
            self.logit_scale().to(image_embeds),
            self.config.alpha,
            self.config.beta,
        )

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
        self.check_labels(labels)
        # in float32 whatever the model's dtype: a half-precision grid and exp would change the choice
        embeds = normalize(image_embeds.to(device=self.zero_shot_weights.device, dtype=torch.float32))
        result = grid_search(
            embeds,
            labels.to(embeds.device),
            self.zero_shot_weights.float(),
            self.cache_keys.detach().float(),
            self.cache_labels,
            self.logit_scale().float(),
            tuple(search_scale or self.config.search_scale),
            tuple(search_step or self.config.search_step),
        )
        self.config.alpha, self.config.beta = result["alpha"], result["beta"]
        return result

    # ------------------------------------------------------------------------------------------------------ helpers
    def _check_ready(self) -> None:
        if self.cache_keys.shape[0] == 0:
            raise ValueError("The cache is empty: call `build_cache(...)` or `set_cache(keys, labels)` first.")

    def _trainable_tensors(self) -> list[nn.Parameter]:
        """Only the cache keys of Tip-Adapter-F train."""
        return [self.cache_keys] if isinstance(self.cache_keys, nn.Parameter) else []


__all__ = ["TipAdapterForImageClassification"]
