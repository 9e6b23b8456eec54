"""Tip-Adapter (Zhang et al., ECCV 2022): training-free few-shot adaptation of CLIP with a key-value cache."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Literal

import torch
from torch import nn

from .cache import normalize, tip_logits
from .configuration_tip_adapter import CACHE_DTYPES, TipAdapterConfig
from .features import iter_augmented_features, zero_shot_weights
from .head_inputs import check_features
from .images import check_images
from .modeling_zero_shot import ZeroShotForImageClassification
from .search import grid_search
from .thumbnails import (
    THUMBNAILS_NAME,
    check_store_bytes,
    check_thumbnail_size,
    load_thumbnails,
    make_thumbnails,
    save_thumbnails,
)
from .updates import as_images, check_new_class_names, classes_to_remove, reindex, resolve_labels


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
        dtype = getattr(torch, config.cache_dtype) if config.cache_dtype else None
        keys = torch.zeros(config.cache_size, dim, dtype=dtype)
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

    def set_cache(
        self,
        keys: torch.Tensor,
        labels: torch.Tensor | Sequence[int],
        *,
        num_shots: int | None = None,
        few_shot_seed: int | None = None,
    ) -> TipAdapterForImageClassification:
        r"""
        Install precomputed cache entries, and record their provenance as given (nothing is inferred).

        Args:
            keys (`torch.Tensor` of shape `[NK, D]`): image features of the few-shot set (normalised here; a key of
                zero norm, or one that overflows when normalised, is refused).
            labels (`torch.LongTensor` of shape `[NK]`): the class of each key, in `[0, num_labels)`.
            num_shots (`int`, *optional*): the shots per class of the sample the keys come from; written to the config
                when given (else `config.num_shots` is left as it is).
            few_shot_seed (`int`, *optional*): the seed of that sample; `None` (the default) records "unknown".
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
        if num_shots is not None and (not isinstance(num_shots, int) or isinstance(num_shots, bool) or num_shots < 1):
            raise ValueError(f"`num_shots` must be an integer >= 1, got {num_shots!r}.")
        device = self.zero_shot_weights.device
        keys = normalize(keys.to(device=device, dtype=torch.float32))  # in float32, then in the model's dtype
        zero = (keys.norm(dim=-1) == 0).nonzero().flatten().tolist()
        if zero:
            raise ValueError(
                f"Cache keys {zero[:10]} have zero norm (all-zero features, or values that overflow when normalised): "
                "`cache_keys` must be image features."
            )
        keys = keys.to(self._cache_dtype())
        if isinstance(self.cache_keys, nn.Parameter):
            self.cache_keys = nn.Parameter(keys.clone())
        else:
            self.cache_keys = keys.clone()
        self.cache_labels = labels.to(device=device, dtype=torch.long).clone()
        self.config.cache_size = keys.shape[0]
        if num_shots is not None:
            self.config.num_shots = num_shots
        self.config.few_shot_seed = few_shot_seed
        self._cache_changed()
        return self

    def _cache_changed(self) -> None:
        """Called after every change of the cache entries (set, built, added, removed); a head whose tensors derive
        from the cache (TIP-X's rescaling ranges) refreshes them here."""

    def _cache_dtype(self) -> torch.dtype:
        """The dtype the keys are kept in: `config.cache_dtype`, else the text weights'."""
        return getattr(torch, self.config.cache_dtype) if self.config.cache_dtype else self.zero_shot_weights.dtype

    def set_cache_dtype(
        self, dtype: Literal["float32", "bfloat16", "float16"] | None
    ) -> TipAdapterForImageClassification:
        """Keep the cache keys in `dtype` (`None`: the model's) from now on, and record it as `config.cache_dtype`."""
        if dtype not in CACHE_DTYPES:
            raise ValueError(f"`cache_dtype` must be one of {list(CACHE_DTYPES)}, got {dtype!r}.")
        if dtype is not None and isinstance(self.cache_keys, nn.Parameter):
            raise ValueError("The cache keys are being fine-tuned (Tip-Adapter-F): they stay in the model's dtype.")
        self.config.cache_dtype = dtype
        self.cache_keys = self.cache_keys.detach().to(self._cache_dtype())
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
        store_thumbnails: bool = False,
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
                `hf_tip.data.datasets.align_labels`); by default they are matched by name (`_` as a space, ignoring case), so
                a dataset listing the model's classes in another order gets the right labels.
            store_thumbnails (`bool`, *optional*, defaults to `False`):
                Keep a small thumbnail of every cache image (saved as `thumbnails.safetensors`) so that predictions
                can show the examples behind them; also on when `enable_thumbnails` was called before.
        """
        if hasattr(images_or_dataset, "column_names"):
            try:  # the dataset checks ship with hf_tip, not with the remote code
                from hf_tip.data.datasets import few_shot_images
            except ImportError as error:
                raise ImportError(
                    "`build_cache` on a dataset needs the hf_tip package (`pip install hf-tip`); pass a list of images "
                    "and `labels=` instead."
                ) from error
            class_names = [self.config.id2label[i] for i in range(self.num_classes)]
            images, labels = few_shot_images(
                images_or_dataset, class_names, num_shots=num_shots, seed=seed, image_column=image_column,
                label_column=label_column, allow_fewer_shots=allow_fewer_shots, class_mapping=class_mapping,
            )  # fmt: skip
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

        thumbnail_size = self._thumbnail_size(store_thumbnails)
        if thumbnail_size is not None:
            check_store_bytes(len(images), thumbnail_size)

        total = self._summed_views(images, epochs, seed, batch_size, show_progress)
        self.set_augmented_cache(total, epochs, labels, num_shots=num_shots, seed=seed)
        if thumbnail_size is not None:
            self.thumbnails = make_thumbnails(images, thumbnail_size)
        return self

    def _summed_views(
        self, images: list, epochs: int, seed: int, batch_size: int, show_progress: bool, first_index: int = 0
    ) -> torch.Tensor:
        """The raw features of views `0..epochs-1` of each image summed pass by pass, [N,D] (float32, CPU); the views
        of image `i` are drawn as the cache's entry `first_index + i` (so entries added later match a rebuild)."""
        total = torch.zeros(len(images), self.feature_dim)
        for _, start, feats in iter_augmented_features(
            self.clip, images, epochs, *self.image_geometry(), seed=seed, batch_size=batch_size,
            indices=range(first_index, first_index + len(images)), show_progress=show_progress,
        ):  # fmt: skip
            total[start : start + feats.shape[0]] += feats
        return total

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
        self.set_cache(
            summed_views / augment_epochs,
            labels,
            num_shots=num_shots,
            few_shot_seed=seed if num_shots is not None else None,  # a given set (not sampled) has no sample seed
        )
        self.config.augment_epochs = augment_epochs
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
        check_features("view_features", view_features, ndim=3)  # finite, no all-zero view
        total = torch.zeros_like(view_features[0])
        for view in view_features:  # summed pass by pass, then divided, as `build_cache` does
            total += view
        return self.set_augmented_cache(total, view_features.shape[0], labels, num_shots=num_shots, seed=seed)

    def enable_key_finetuning(self) -> TipAdapterForImageClassification:
        """Make the cache keys a trainable `nn.Parameter` (Tip-Adapter-F); CLIP, the text weights and values stay frozen."""
        if self.config.cache_dtype is not None:
            raise ValueError(
                f"The cache keys are kept in {self.config.cache_dtype} for inference (`cache_dtype`); call "
                "`set_cache_dtype(None)` before fine-tuning them."
            )
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
        bias = self.logit_bias()
        return tip_logits(
            image_embeds,
            self.zero_shot_weights,
            self.cache_keys,
            self.cache_labels,
            self.logit_scale().to(image_embeds),
            self.config.alpha,
            self.config.beta,
            None if bias is None else bias.to(image_embeds),
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

    # ----------------------------------------------------------------------------------------------- live updates
    # An added image's augmented views are drawn from `view_generator(seed, view, index)` with `index` its position in
    # the cache when added (`cache_size`, `cache_size + 1`, ...): the position `build_cache` gives it when the cache's
    # images and the new ones are encoded together, in that order. So a live-updated model equals one built from
    # scratch on the union (same seed, same augment_epochs); removed entries take no index with them.
    def add_examples(
        self,
        images: Sequence,
        labels: Sequence[int | str] | torch.Tensor,
        *,
        seed: int | None = None,
        batch_size: int = 32,
        show_progress: bool = False,
    ) -> TipAdapterForImageClassification:
        r"""
        Append labelled examples to the cache, their keys made as `build_cache` makes them (`config.augment_epochs`
        augmented views, raw features averaged, then L2-normalised). Everything is checked before the model changes.

        Args:
            images (`list[PIL.Image.Image | str]`): the new images (or image file paths).
            labels (`list[int | str]` or `torch.LongTensor` of shape `[N]`): each image's class, as an index in
                `[0, num_labels)` or a class name of `config.label2id`.
            seed (`int`, *optional*): the augmentation seed; defaults to the cache's (`config.few_shot_seed`), else 1
                (`build_cache`'s default). Pass the seed the cache was built with when the config does not record it.

        Example:

        ```python
        >>> model.add_examples([image], ["dog"])  # doctest: +SKIP
        >>> model.config.cache_size
        7
        ```
        """
        images = as_images(images)
        if not images:
            raise ValueError("`images` is empty: pass at least one image to add.")
        labels = resolve_labels(labels, self.config.label2id, self.num_classes, len(images))
        thumbnails = self._new_thumbnails(images)
        keys = self._encode_new_examples(images, seed, batch_size, show_progress)
        self._append_entries(keys, labels, thumbnails)
        return self

    def add_classes(
        self,
        names: Sequence[str],
        images: Sequence | None = None,
        labels: Sequence[int | str] | torch.Tensor | None = None,
        *,
        seed: int | None = None,
        batch_size: int = 32,
        show_progress: bool = False,
    ) -> TipAdapterForImageClassification:
        r"""
        Add classes after the existing ones: their zero-shot text weights from the config's templates (`_` reads as a
        space, as in `from_clip`), `id2label` / `label2id` / `num_labels` extended, and cache entries for `images`.

        Args:
            names (`list[str]`): new, distinct, non-empty class names.
            images (`list[PIL.Image.Image | str]`, *optional*): examples to add to the cache (see `add_examples`).
            labels (`list[int | str]`, *optional*): each image's class (a name or an index among old and new
                classes); may be left out when a single class is added.
            seed (`int`, *optional*): the augmentation seed (see `add_examples`).
        """
        names = check_new_class_names(names, [self.config.id2label[i] for i in range(self.num_classes)])
        num_classes = self.num_classes + len(names)
        label2id = {**self.config.label2id, **{name: self.num_classes + i for i, name in enumerate(names)}}
        if images is None and labels is not None:
            raise ValueError("`labels` were given without `images`; pass the images they label.")
        if images is not None:
            images = as_images(images)
            if labels is None and len(names) > 1:
                raise ValueError(f"Pass `labels` (one per image) to say which of the new classes {names} each shows.")
            labels = [names[0]] * len(images) if labels is None else labels
            labels = resolve_labels(labels, label2id, num_classes, len(images))
        if self.processor is None or getattr(self.processor, "tokenizer", None) is None:
            raise ValueError("The model has no tokenizer (`model.processor` is None): new classes need text weights.")
        weights = zero_shot_weights(
            self.clip, self.processor.tokenizer, [n.replace("_", " ") for n in names], self.config.templates
        )
        thumbnails = self._new_thumbnails(images) if images else None
        keys = self._encode_new_examples(images, seed, batch_size, show_progress) if images else None
        self.zero_shot_weights = torch.cat([self.zero_shot_weights, weights.to(self.zero_shot_weights)])
        self.config.id2label = {i: name for name, i in label2id.items()}
        self.config.label2id = label2id
        if keys is not None:
            self._append_entries(keys, labels, thumbnails)
        return self

    def remove_classes(self, names: Sequence[str]) -> TipAdapterForImageClassification:
        r"""
        Remove classes: their text weights and cache entries go, and the remaining classes are numbered `0..C'-1` in
        their former order (`id2label`, `label2id`, `cache_labels` re-indexed).

        Args:
            names (`list[str]`): existing class names; at least one class must remain.
        """
        removed = classes_to_remove(names, self.config.label2id)
        kept = [c for c in range(self.num_classes) if c not in removed]
        keep, labels = reindex(self.cache_labels, removed, self.num_classes)
        keys = self.cache_keys.detach()[keep.to(self.cache_keys.device)]
        thumbnails = self.thumbnails[keep] if self.has_thumbnails else None
        names_kept = [self.config.id2label[c] for c in kept]
        self.zero_shot_weights = self.zero_shot_weights[kept].clone()
        self.config.id2label = dict(enumerate(names_kept))
        self.config.label2id = {name: i for i, name in enumerate(names_kept)}
        self._install_entries(keys, labels.to(self.cache_labels.device), thumbnails)
        return self

    def _encode_new_examples(
        self, images: list, seed: int | None, batch_size: int, show_progress: bool
    ) -> torch.Tensor:
        """Keys [N,D] of new images (model device and dtype), views indexed from the current cache size on."""
        if seed is None:
            seed = self.config.few_shot_seed if self.config.few_shot_seed is not None else 1
        epochs, first = self.config.augment_epochs, self.cache_keys.shape[0]
        total = self._summed_views(images, epochs, seed, batch_size, show_progress, first_index=first)
        return normalize((total / epochs).to(device=self.zero_shot_weights.device, dtype=self.zero_shot_weights.dtype))

    def _append_entries(self, keys: torch.Tensor, labels: torch.Tensor, thumbnails: torch.Tensor | None) -> None:
        """Append keys [N,D], labels [N] (and thumbnails [N,h,w,3] when the store is on) to the cache."""
        if thumbnails is not None and self.has_thumbnails:
            thumbnails = torch.cat([self.thumbnails, thumbnails])
        keys = torch.cat([self.cache_keys.detach(), keys.to(self.cache_keys)])
        labels = torch.cat([self.cache_labels, labels.to(self.cache_labels.device)])
        self._install_entries(keys, labels, thumbnails)

    def _install_entries(self, keys: torch.Tensor, labels: torch.Tensor, thumbnails: torch.Tensor | None) -> None:
        """Replace the cache with keys [NK,D] and labels [NK] as given (no renormalisation), keeping Tip-F's parameter
        trainable, and update `cache_size` / `num_shots`; thumbnails that no longer match are dropped."""
        if isinstance(self.cache_keys, nn.Parameter):
            self.cache_keys = nn.Parameter(keys.clone(), requires_grad=self.cache_keys.requires_grad)
        else:
            self.cache_keys = keys.clone()
        self.cache_labels = labels.clone()
        self.config.cache_size = keys.shape[0]
        counts = torch.bincount(labels.cpu(), minlength=self.num_classes)
        if not (keys.shape[0] and bool((counts == counts[0]).all()) and int(counts[0]) == self.config.num_shots):
            # no longer the seeded K-shot sample the config describes: its shots and seed are unknown from here on
            self.config.num_shots = int(counts[0]) if keys.shape[0] and bool((counts == counts[0]).all()) else None
            self.config.few_shot_seed = None
        if self.thumbnails is not None:
            ok = thumbnails is not None and thumbnails.shape[0] == keys.shape[0]
            self.thumbnails = thumbnails if ok else None
        self._cache_changed()

    # ------------------------------------------------------------------------------------------------- thumbnails
    thumbnails: torch.Tensor | None = None  # opt-in store: uint8 [NK,h,w,3] on the CPU (see `enable_thumbnails`)

    def enable_thumbnails(self, size: int = 64, images: Sequence | None = None) -> TipAdapterForImageClassification:
        r"""
        Turn on the thumbnail store: one `size`x`size` uint8 thumbnail per cache entry, saved with the model as
        `thumbnails.safetensors` (at most 96 px and 64 MiB in all), so that predictions can show the examples that
        drove them (`hf_tip.app.explain`). Off by default: the cache's images may be private. Later `build_cache`,
        `add_examples` and `add_classes` calls keep it up to date.

        Args:
            size (`int`, *optional*, defaults to 64): thumbnail side in pixels, in `[8, 96]`.
            images (`list[PIL.Image.Image | str]`, *optional*): the images of the current cache entries, in cache
                order; required when the cache is not empty.
        """
        size = check_thumbnail_size(size)
        count = self.cache_keys.shape[0]
        images = as_images(images) if images is not None else []
        if len(images) != count:
            raise ValueError(
                f"The cache has {count} entries but {len(images)} images were given; pass the cache's images, in cache "
                "order, to `enable_thumbnails(images=...)` (or build the cache with `store_thumbnails=True`)."
            )
        check_store_bytes(count, size)
        self.thumbnails = make_thumbnails(images, size)
        return self

    def disable_thumbnails(self) -> TipAdapterForImageClassification:
        """Drop the thumbnail store; the next `save_pretrained` into a folder removes its `thumbnails.safetensors`."""
        self.thumbnails = None
        return self

    @property
    def has_thumbnails(self) -> bool:
        """Whether the store is on and holds one thumbnail per cache entry."""
        return self.thumbnails is not None and self.thumbnails.shape[0] == self.cache_keys.shape[0]

    def _thumbnail_size(self, store: bool = False) -> int | None:
        """The store's thumbnail size (64 when `store` turns it on), or None when it is off."""
        if self.thumbnails is not None:
            return int(self.thumbnails.shape[1])
        return 64 if store else None

    def _new_thumbnails(self, images: list) -> torch.Tensor | None:
        """Thumbnails [N,h,w,3] of images about to be added when the store is on (its cap checked first)."""
        size = self._thumbnail_size()
        if size is None:
            return None
        check_store_bytes(self.cache_keys.shape[0] + len(images), size)
        return make_thumbnails(images, size)

    def _save_thumbnails(self, save_directory: str | os.PathLike) -> None:
        """Write `thumbnails.safetensors`, or remove a stale one when the model has no (matching) store."""
        path = os.path.join(save_directory, THUMBNAILS_NAME)
        if self.has_thumbnails:
            save_thumbnails(self.thumbnails, save_directory)
        elif os.path.exists(path):
            os.remove(path)

    def _load_thumbnails(self, name_or_path, hub_kwargs: dict) -> None:
        """Load `thumbnails.safetensors` from a folder or Hub repo when it has one."""
        from transformers.utils import cached_file

        kwargs = {k: v for k, v in hub_kwargs.items() if k != "trust_remote_code"}
        try:
            path = cached_file(
                str(name_or_path),
                THUMBNAILS_NAME,
                _raise_exceptions_for_missing_entries=False,
                _raise_exceptions_for_connection_errors=False,
                **kwargs,
            )
        except OSError:
            path = None
        self.thumbnails = load_thumbnails(path, self.cache_keys.shape[0]) if path else None

    # ------------------------------------------------------------------------------------------- save / load hooks
    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path, *model_args, **kwargs):
        """Load as the base class does, plus the cache's `thumbnails.safetensors` when the folder or repo has one."""
        loaded = super().from_pretrained(pretrained_model_name_or_path, *model_args, **kwargs)
        model = loaded[0] if isinstance(loaded, tuple) else loaded  # (model, info) with `output_loading_info=True`
        keys = ("revision", "cache_dir", "token", "local_files_only", "subfolder")
        model._load_thumbnails(pretrained_model_name_or_path, {k: kwargs[k] for k in keys if k in kwargs})
        return loaded

    def save_pretrained(self, save_directory: str | os.PathLike, *args, **kwargs) -> None:
        """Save as the base class does; with the thumbnail store on, `thumbnails.safetensors` too (written first, so a
        `push_to_hub=True` save uploads it; a stale one is removed when the store is off)."""
        save_backbone = kwargs.get("save_backbone")
        if not (self.config.save_backbone if save_backbone is None else save_backbone):
            self._check_adapter_only_save()  # before anything is written
        if kwargs.get("is_main_process", True):
            os.makedirs(save_directory, exist_ok=True)
            self._save_thumbnails(save_directory)
        super().save_pretrained(save_directory, *args, **kwargs)

    # ------------------------------------------------------------------------------------------------------ loading
    def _shape_hint(self, key: str) -> str:
        if key in ("cache_keys", "cache_labels"):
            return f"`cache_size` = {self.config.cache_size} entries"
        return super()._shape_hint(key)

    def _validate_loaded(self, folder: str) -> None:
        """Besides the base's checks: every cache label names a class, and no cache key has zero norm."""
        super()._validate_loaded(folder)
        labels = self.cache_labels
        bad = labels[(labels < 0) | (labels >= self.num_classes)].unique().tolist()
        if bad:
            raise ValueError(
                f"Cannot load the adapter in {folder!r}: `cache_labels` holds {bad[:10]}, outside the "
                f"{self.num_classes} classes [0, {self.num_classes}) of config.json's `id2label`."
            )
        zero = (self.cache_keys.detach().norm(dim=-1) == 0).nonzero().flatten().tolist()
        if zero:
            raise ValueError(
                f"Cannot load the adapter in {folder!r}: `cache_keys` rows {zero[:10]} are all zero; a key is the "
                "unit-norm image feature of a few-shot example."
            )

    # ------------------------------------------------------------------------------------------------------ helpers
    def _check_ready(self) -> None:
        if self.cache_keys.shape[0] == 0:
            raise ValueError("The cache is empty: call `build_cache(...)` or `set_cache(keys, labels)` first.")

    def _trainable_tensors(self) -> list[nn.Parameter]:
        """Only the cache keys of Tip-Adapter-F train."""
        return [self.cache_keys] if isinstance(self.cache_keys, nn.Parameter) else []


__all__ = ["TipAdapterForImageClassification"]
