"""Zero-shot classification with a CLIP-family dual encoder, and the base class of every hf-tip head.

A head adds what a few labelled examples teach to CLIP's zero-shot classifier `s · f Wᵀ`. The base holds what every
head shares: the frozen dual encoder (`clip`), the text weights `W` `[C,D]` (`zero_shot_weights`), the processor,
feature encoding, validation of inputs at the edge, saving, loading and pushing. A head overrides `head_logits`
(and, for what it learns, `fit`, `search_hyperparameters` and the tensors it registers in `_init_head`).
"""

from __future__ import annotations

import hashlib
import os
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn
from transformers import AutoImageProcessor, AutoModel, AutoProcessor, PreTrainedModel, ProcessorMixin
from transformers import initialization as init
from transformers.modeling_outputs import ImageClassifierOutput

from .cache import normalize, zero_shot_logits
from .configuration_zero_shot import ZeroShotConfig
from .families import default_image_size, logit_bias
from .features import encode_images, feature_dim, zero_shot_weights
from .images import OPENAI_CLIP_MEAN, OPENAI_CLIP_STD, check_pixel_values
from .names import check_class_names

# What `from_pretrained` passes on to the loaders of the processor (and, but `revision`, of an adapter's backbone).
HUB_KWARGS = ("revision", "cache_dir", "token", "local_files_only", "subfolder", "trust_remote_code")
BACKBONE_HUB_KWARGS = ("cache_dir", "token", "local_files_only", "proxies", "force_download")


class ZeroShotPreTrainedModel(PreTrainedModel):
    config_class = ZeroShotConfig
    config: ZeroShotConfig
    base_model_prefix = "zero_shot"
    main_input_name = "pixel_values"
    input_modalities = ("image",)

    def _init_weights(self, module):
        if isinstance(module, ZeroShotForImageClassification):
            for name in module._head_tensors():
                tensor = getattr(module, name)
                if tensor is not None and tensor.numel():
                    init.zeros_(tensor)


class ZeroShotForImageClassification(ZeroShotPreTrainedModel):
    r"""
    Zero-shot image classification with a CLIP-family dual encoder: `logits = s · f Wᵀ`, with `f` the L2-normalised
    image feature, `W` `[C,D]` the prompt-ensembled text embeddings of the class names and `s` the backbone's logit
    scale. Every hf-tip head subclasses it.

    Example:

    ```python
    >>> from hf_tip import ZeroShotForImageClassification
    >>> model = ZeroShotForImageClassification.from_clip(
    ...     "openai/clip-vit-base-patch16", class_names=["cat", "dog"], templates=["a photo of a {}."]
    ... )
    >>> logits = model(pixel_values=pixel_values).logits  # [B, 2]
    ```
    """

    def __init__(self, config: ZeroShotConfig, clip: PreTrainedModel | None = None):
        super().__init__(config)
        self.clip = clip if clip is not None else AutoModel.from_config(config.backbone_config)
        dim = feature_dim(config.backbone_config)
        self.register_buffer("zero_shot_weights", torch.zeros(config.num_labels, dim), persistent=True)
        self._init_head(config, dim)
        self.processor: ProcessorMixin | None = None
        # What the model card reports (see `hf_tip.hub.model_card`); filled by `hf-tip build` and fine-tuning runs.
        self.card_data: dict = {}
        self.post_init()
        if not config.save_backbone:  # an adapter-only save: the backbone loads from its own repo, not these weights
            self._keys_to_ignore_on_load_missing = {*self._keys_to_ignore_on_load_missing, r"^clip\."}
        self._freeze()

    def _init_head(self, config: ZeroShotConfig, dim: int) -> None:
        """Register the head's own tensors (parameters or persistent buffers), sized from the config."""

    def _head_tensors(self) -> list[str]:
        """Names of the tensors `_init_head` registers (zero-initialised before loading)."""
        return ["zero_shot_weights"]

    # ----------------------------------------------------------------------------------------------- construction
    @classmethod
    def from_clip(
        cls,
        model_or_path: str | os.PathLike | PreTrainedModel,
        class_names: Sequence[str],
        templates: Sequence[str] | None = None,
        processor: ProcessorMixin | None = None,
        **config_kwargs,
    ):
        r"""
        Build the head, untrained, on a CLIP-family backbone: text weights `W` `[C,D]` from the prompts.

        Args:
            model_or_path (`str`, `os.PathLike` or [`PreTrainedModel`]):
                A Hub id or local folder of a dual-encoder checkpoint, or a loaded model (then pass `processor`).
            class_names (`list[str]`):
                One name per class, in label order; they become `id2label`. `_` reads as a space in prompts.
            templates (`list[str]`, *optional*):
                Prompt templates with one `{}`; defaults to the config's (`"a photo of a {}."`).
            processor ([`ProcessorMixin`], *optional*):
                Tokenizer and image processor; loaded from `model_or_path` when it is a path.
            config_kwargs:
                Any other argument of the head's configuration (`alpha`, `beta`, `num_shots`, ...).
        """
        clip, processor, name = _load_backbone(model_or_path, processor, config_kwargs.get("backbone_revision"))
        class_names = check_class_names(class_names)
        config_kwargs.setdefault("backbone_name_or_path", name or getattr(clip.config, "_name_or_path", None) or None)
        # a Hub backbone is pinned to the commit it was loaded at, so an adapter-only save reloads the same weights
        if config_kwargs.get("backbone_name_or_path") and not config_kwargs.get("backbone_revision"):
            config_kwargs["backbone_revision"] = resolved_commit(
                config_kwargs["backbone_name_or_path"], config_kwargs.get("backbone_revision")
            ) or getattr(clip.config, "_commit_hash", None)
        config = cls.config_class(
            backbone_config=clip.config.to_dict(),
            templates=list(templates) if templates is not None else None,
            id2label=dict(enumerate(class_names)),
            label2id={c: i for i, c in enumerate(class_names)},
            **config_kwargs,
        )
        model = cls(config, clip=clip)
        model.processor = processor
        model.set_class_prompts([c.replace("_", " ") for c in class_names])
        return model.to(clip.device).eval()

    from_backbone = from_clip

    def set_class_prompts(self, prompt_names: Sequence[str]) -> None:
        """Recompute the text weights `W` from what the prompts call each class (in label order)."""
        if len(prompt_names) != self.num_classes:
            raise ValueError(f"Got {len(prompt_names)} prompt names for {self.num_classes} classes.")
        if self.processor is None:
            raise ValueError("The model has no processor (`model.processor`): prompts need its tokenizer.")
        weights = zero_shot_weights(self.clip, self.processor.tokenizer, list(prompt_names), self.config.templates)
        self.zero_shot_weights.copy_(weights.to(self.zero_shot_weights))

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path, *model_args, **kwargs):
        """Load a saved head, and its processor (as `model.processor`) when the folder or repo has one. An adapter-only
        save (`save_backbone: false` in config.json) loads its backbone from `backbone_name_or_path` at
        `backbone_revision` (with the caller's `cache_dir` / `token` / `local_files_only`). Raises a `ValueError`
        naming the folder and the tensor when a head tensor is missing, mis-shaped or invalid (see
        `_validate_loaded`)."""
        want_info = kwargs.pop("output_loading_info", False)
        if kwargs.get("config") is None:
            cls._check_stored_type(pretrained_model_name_or_path, kwargs)
        kwargs["ignore_mismatched_sizes"] = True  # a mis-shaped tensor is reported below, by name
        model, info = super().from_pretrained(
            pretrained_model_name_or_path, *model_args, output_loading_info=True, **kwargs
        )
        folder = str(pretrained_model_name_or_path)
        model._check_loading_info(folder, info)
        model._validate_loaded(folder)
        model._own_head_tensors()
        if not model.config.save_backbone:
            _check_backbone_fingerprint(model.config, folder, None)
            backbone_kwargs = {k: kwargs[k] for k in BACKBONE_HUB_KWARGS if k in kwargs}
            device = model.zero_shot_weights.device
            model.clip = _load_saved_backbone(model.config, folder, model.clip.dtype, backbone_kwargs).to(device)
            _check_backbone_fingerprint(model.config, folder, model.clip)
        model._freeze()  # loading in transformers 5 makes every parameter trainable again
        # `trust_remote_code` travels on: the processor loader reads config.json, whose `auto_map` would otherwise
        # make transformers prompt for it again when the model was loaded as remote code.
        hub_kwargs = {k: kwargs[k] for k in HUB_KWARGS if k in kwargs}
        model.processor = _load_processor(model.config, folder, hub_kwargs)
        return (model, info) if want_info else model

    def save_pretrained(
        self,
        save_directory: str | os.PathLike,
        *args,
        save_backbone: bool | None = None,
        push_to_hub: bool = False,
        **kwargs,
    ) -> None:
        """Save config, `model.safetensors`, the processor and (with `hf_tip` installed) a model card README.md;
        `push_to_hub=True` then uploads them with `push_to_hub` (`repo_id=` defaults to the folder's name).

        With `save_backbone=False` (default: the config's `save_backbone`), only the adapter's tensors (every weight
        outside the backbone `clip.`: text weights, cache, head) and the image processor are written, and
        config.json names the backbone (`backbone_name_or_path`, `backbone_revision`) that `from_pretrained` loads."""
        save_backbone = self.config.save_backbone if save_backbone is None else bool(save_backbone)
        recorded_reference = (self.config.backbone_name_or_path, self.config.backbone_fingerprint)
        if not save_backbone:
            self._check_adapter_only_save()
            kwargs["state_dict"] = {k: v for k, v in self.state_dict().items() if not k.startswith("clip.")}
            name = self.config.backbone_name_or_path
            if os.path.isdir(name):  # a local folder: stored as an absolute path, which resolves from anywhere
                self.config.backbone_name_or_path = os.path.abspath(name)
            self.config.backbone_fingerprint = weights_fingerprint(self.clip)
        else:
            self.config.backbone_fingerprint = None  # a full save holds its backbone
        push_kwargs = {k: kwargs.pop(k) for k in ("repo_id", "commit_message", "create_pr", "private") if k in kwargs}
        recorded = self.config.save_backbone
        self.config.save_backbone = save_backbone  # what config.json and the card say about this save
        try:
            super().save_pretrained(save_directory, *args, **kwargs)
            if not kwargs.get("is_main_process", True):
                return
            self._save_processor(save_directory, save_backbone)
            _write_card(self, save_directory)
        finally:
            self.config.save_backbone = recorded
            self.config.backbone_name_or_path, self.config.backbone_fingerprint = recorded_reference
        if push_to_hub:
            repo_id = push_kwargs.pop("repo_id", os.path.basename(os.path.normpath(save_directory)))
            self.push_to_hub(repo_id, token=kwargs.get("token"), save_backbone=save_backbone, **push_kwargs)

    def _save_processor(self, save_directory: str | os.PathLike, save_backbone: bool) -> None:
        """The processor's files (an adapter-only save: the image processor's only; the tokenizer is the backbone's)."""
        if self.processor is None:
            warnings.warn(
                f"The model has no processor (`model.processor` is None): {save_directory} gets no image processor or "
                "tokenizer files, so `pipeline(...)` cannot load it. Set `model.processor` to the backbone's first.",
                UserWarning,
                stacklevel=3,
            )
            return
        if save_backbone:
            self.processor.save_pretrained(save_directory)
        # preprocessor_config.json too: AutoImageProcessor and pipelines still probe it, and transformers 4 reads it
        self.processor.image_processor.save_pretrained(save_directory)

    def _check_adapter_only_save(self) -> None:
        """Raise a `ValueError` when the backbone has no name an adapter-only save could load it by."""
        name = self.config.backbone_name_or_path
        if not name:
            raise ValueError(
                "`save_backbone=False` needs the backbone's Hub id or folder, and this model's backbone has none "
                "(`config.backbone_name_or_path` is unset: it was built from an in-memory model). Build it with "
                "`from_clip('<repo id or folder>', ...)`, set `model.config.backbone_name_or_path` to where the same "
                "backbone can be loaded, or save the full model (`save_backbone=True`)."
            )
        if (os.path.isabs(name) or name.startswith(".")) and not os.path.isdir(name):
            raise ValueError(
                f"`save_backbone=False` names the backbone {name!r}, which is no folder; an adapter-only save could "
                "not load it. Save the full model (`save_backbone=True`) or point `backbone_name_or_path` at it."
            )

    def push_to_hub(self, repo_id: str, *, save_backbone: bool | None = None, **kwargs):
        """Upload config, weights, remote code, processor and the hf_tip model card to `repo_id` in one commit (see
        `hf_tip.hub.push.push_model`; transformers' own push would replace the card with a generic one). With
        `save_backbone=False` the repo holds the adapter only (see `save_pretrained`). Returns the `CommitInfo`."""
        if not (self.config.save_backbone if save_backbone is None else save_backbone):
            self._check_adapter_only_save()
            name = self.config.backbone_name_or_path
            if os.path.isabs(name) or os.path.isdir(name) or name.startswith("."):
                raise ValueError(
                    f"Cannot push an adapter-only model to {repo_id!r}: its backbone {name!r} is a folder on this "
                    "machine, so nobody else could load it. Push the backbone to the Hub and set "
                    "`model.config.backbone_name_or_path` (and `backbone_revision`) to its repo id, or push the full "
                    "model (`save_backbone=True`)."
                )
        recorded = self.config.save_backbone  # what `save_pretrained` defaults to, whoever calls it
        self.config.save_backbone = recorded if save_backbone is None else bool(save_backbone)
        try:
            try:
                from hf_tip.hub.push import push_model
            except ImportError:  # remote-code users without hf_tip: transformers' push and its generic card
                return super().push_to_hub(repo_id, **kwargs)
            return push_model(self, repo_id, **kwargs)
        finally:
            self.config.save_backbone = recorded

    # --------------------------------------------------------------------------------------------------- inference
    @property
    def num_classes(self) -> int:
        return self.zero_shot_weights.shape[0]

    @property
    def feature_dim(self) -> int:
        return self.zero_shot_weights.shape[1]

    def get_image_features(self, pixel_values: torch.Tensor, **image_inputs: torch.Tensor) -> torch.Tensor:
        """L2-normalised image features [B,D] of pixel values [B,3,H,W] (SigLIP 2: also `pixel_attention_mask`,
        `spatial_shapes`)."""
        return encode_images(self.clip, pixel_values, **image_inputs)

    def logit_scale(self) -> torch.Tensor:
        """The backbone's logit scale `s` (a scalar tensor)."""
        return self.clip.logit_scale.exp()

    def logit_bias(self) -> torch.Tensor | None:
        """The backbone's zero-shot logit bias `b` (SigLIP, SigLIP 2), `None` for the families without one."""
        return logit_bias(self.clip)

    def _scale_and_bias(self, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The backbone's zero-shot scoring `(s, b)` in `like`'s dtype and device (`b` is `None` without a bias): what
        every head passes to the pure functions' `logit_scale` / `logit_bias`."""
        bias = self.logit_bias()
        return self.logit_scale().to(like), None if bias is None else bias.to(like)

    def _zero_shot_logits(self, image_embeds: torch.Tensor) -> torch.Tensor:
        """`s · f Wᵀ (+ b)` [B,C] for L2-normalised features [B,D] already in the head's dtype (no checks)."""
        return zero_shot_logits(image_embeds, self.zero_shot_weights, *self._scale_and_bias(image_embeds))

    def zero_shot_logits(self, image_embeds: torch.Tensor) -> torch.Tensor:
        """The backbone's zero-shot logits [B,C] (`s · cos`, SigLIP: `s · cos + b`) for image features [B,D]."""
        return self._zero_shot_logits(normalize(image_embeds.to(self.zero_shot_weights)))

    def head_logits(self, image_embeds: torch.Tensor) -> torch.Tensor:
        """The head's logits [B,C] for L2-normalised features [B,D] in the head's dtype; zero-shot here."""
        return self._zero_shot_logits(image_embeds)

    def forward(
        self,
        pixel_values: torch.Tensor | None = None,
        image_embeds: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        return_dict: bool | None = None,
        pixel_attention_mask: torch.Tensor | None = None,
        spatial_shapes: torch.Tensor | None = None,
    ) -> ImageClassifierOutput:
        r"""
        Args:
            pixel_values (`torch.FloatTensor` of shape `[B, 3, H, W]`, *optional*): images, as the processor makes them
                (SigLIP 2: patches `[B, N, p·p·3]` with `pixel_attention_mask` `[B, N]` and `spatial_shapes` `[B, 2]`).
            image_embeds (`torch.FloatTensor` of shape `[B, D]`, *optional*): precomputed image features of the
                backbone (normalised here). Pass exactly one of `pixel_values` and `image_embeds`.
            labels (`torch.LongTensor` of shape `[B]`, *optional*): class indices for the cross-entropy `loss`.

        Returns:
            [`ImageClassifierOutput`] with `logits` `[B, C]` and, given labels, `loss`.
        """
        if (pixel_values is None) == (image_embeds is None):
            raise ValueError("Pass exactly one of `pixel_values` and `image_embeds`.")
        self._check_ready()
        if pixel_values is not None:
            if spatial_shapes is None:
                check_pixel_values(pixel_values)
            elif not torch.isfinite(pixel_values).all():  # SigLIP 2's patches [B, N, p*p*3]
                raise ValueError("`pixel_values` holds NaN or inf values.")
            image_embeds = encode_images(self.clip, pixel_values, True, pixel_attention_mask, spatial_shapes)
        else:
            if image_embeds.ndim != 2 or image_embeds.shape[-1] != self.feature_dim:
                raise ValueError(
                    f"`image_embeds` must have shape [B, {self.feature_dim}], got {tuple(image_embeds.shape)}."
                )
            if not torch.isfinite(image_embeds).all():
                raise ValueError("`image_embeds` holds NaN or inf values.")
            image_embeds = normalize(image_embeds)
            if not bool(image_embeds.any(dim=-1).all()):  # a zero row: all-zero input, or a norm that overflowed
                zero = (~image_embeds.any(dim=-1)).nonzero().flatten().tolist()
                raise ValueError(
                    f"`image_embeds` rows {zero[:10]} have zero norm (all-zero features, or values that overflow when "
                    "normalised): the logits would be uniform."
                )
        logits = self.head_logits(image_embeds.to(self.zero_shot_weights))
        loss = None
        if labels is not None:
            labels = torch.as_tensor(labels)
            if labels.shape != logits.shape[:1] or labels.dtype.is_floating_point or labels.dtype == torch.bool:
                raise ValueError(
                    f"`labels` must be integer class indices of shape [{logits.shape[0]}] (one per image), "
                    f"got shape {tuple(labels.shape)} and dtype {labels.dtype}."
                )
            self.check_labels(labels)
            loss = nn.functional.cross_entropy(logits, labels.to(logits.device))
        return ImageClassifierOutput(loss=loss, logits=logits)

    # ------------------------------------------------------------------------------------------------ fitting
    def fit(self, view_features: torch.Tensor, labels: torch.Tensor, **kwargs: Any):
        """Fit the head, training-free, on raw few-shot view features [V,N,D] and labels [N]; zero-shot: nothing."""
        return self

    def search_hyperparameters(self, image_embeds: torch.Tensor, labels: torch.Tensor, **kwargs: Any) -> dict:
        """Choose the head's hyper-parameters on validation features [N,D]; zero-shot has none (returns accuracy)."""
        labels = torch.as_tensor(labels)
        if image_embeds.ndim != 2 or image_embeds.shape[0] == 0 or labels.shape != image_embeds.shape[:1]:
            raise ValueError(
                f"Validation needs `image_embeds` [N, D] with N >= 1 and one label per row; got "
                f"{tuple(image_embeds.shape)} features and {tuple(labels.shape)} labels."
            )
        self.check_labels(labels)
        logits = self(image_embeds=image_embeds).logits
        return {"accuracy": (logits.argmax(-1) == labels.to(logits.device)).float().mean().item()}

    # ------------------------------------------------------------------------------------------------------ loading
    @classmethod
    def _check_stored_type(cls, folder: str | os.PathLike, kwargs: dict) -> None:
        """Raise a `ValueError` naming the folder, the class and the stored `model_type` when config.json is another
        method's (a TIP-X folder loaded as Tip-Adapter would drop its head silently)."""
        hub_kwargs = {k: kwargs[k] for k in (*HUB_KWARGS, "proxies", "force_download") if k in kwargs}
        hub_kwargs.pop("trust_remote_code", None)
        try:
            stored, _ = cls.config_class.get_config_dict(folder, **hub_kwargs)
        except (OSError, ValueError):
            return  # transformers' own loader reports an unreadable folder
        stored_type, own_type = stored.get("model_type"), cls.config_class.model_type
        if stored_type != own_type:
            raise ValueError(
                f"Cannot load {str(folder)!r} as a {cls.__name__}: its config.json has model_type {stored_type!r}, "
                f"but {cls.__name__} reads {own_type!r} folders. Load it with the class of its own method "
                "(`AutoModelForImageClassification.from_pretrained(...)` picks it), or fix `model_type` if it was "
                "edited."
            )

    def _stored_head_keys(self) -> list[str]:
        """The names of every tensor the head saves besides the backbone (`zero_shot_weights`, the head's own)."""
        return [key for key in self.state_dict() if not key.startswith("clip.")]

    def _check_loading_info(self, folder: str, info: dict) -> None:
        """Raise a `ValueError` naming `folder` and the tensor when a head tensor (or, in a full save, a backbone
        weight) is missing from the saved weights or has another shape than config.json implies."""
        mismatched = {key: (tuple(saved), tuple(expected)) for key, saved, expected in info.get("mismatched_keys", [])}
        for key, (saved, expected) in sorted(mismatched.items()):
            raise ValueError(
                f"Cannot load the adapter in {folder!r}: the saved `{key}` has shape {saved}, but config.json implies "
                f"{expected} ({self._shape_hint(key)}). The folder's config.json and weights disagree; save the "
                "model again with `save_pretrained`."
            )
        unexpected = sorted(key for key in info.get("unexpected_keys", []) if not key.startswith("clip."))
        if unexpected:
            raise ValueError(
                f"Cannot load the adapter in {folder!r}: its weights hold tensors a {type(self).__name__} does not use "
                f"({', '.join(f'`{key}`' for key in unexpected[:10])}); the folder is another method's or was edited. "
                "Load it with the class of its own method (`AutoModelForImageClassification` picks it)."
            )
        missing = set(info.get("missing_keys", []))
        head = [name for name in self._stored_head_keys() if name in missing]
        backbone = sorted(key for key in missing if key.startswith("clip.")) if self.config.save_backbone else []
        if head or backbone:
            what = (
                f"the adapter tensor `{head[0]}`"
                if head
                else f"{len(backbone)} backbone weights (`{backbone[0]}`, ...)"
            )
            raise ValueError(
                f"Cannot load the adapter in {folder!r}: {what} is missing from its weights (model.safetensors). "
                "Loading it would leave the tensor zero or random; save the model again with `save_pretrained`."
            )

    def _own_head_tensors(self) -> None:
        """Give each loaded head tensor memory of its own. Loading maps the weights file, so a tensor starts wherever
        its bytes lie in the file; a matmul over memory aligned otherwise than the built model's takes other kernel
        paths and can differ in the last bit (TIP-X's KL term did), so a reload would not give identical logits."""
        for name in self._head_tensors():
            tensor = getattr(self, name)
            if isinstance(tensor, nn.Parameter):
                tensor.data = tensor.data.clone()
            else:
                self._buffers[name] = tensor.clone()

    def _shape_hint(self, key: str) -> str:
        """What in config.json sets the shape of tensor `key` (named in shape errors)."""
        return (
            "`id2label`: C classes and the backbone's feature dim D" if key == "zero_shot_weights" else "the backbone"
        )

    def _validate_loaded(self, folder: str) -> None:
        """Raise a `ValueError` naming `folder` and the tensor when a loaded tensor cannot be right: NaN or inf in a
        head tensor, a zero text weight. Heads extend it with their own tensors' rules (call `super()` first)."""
        for name, tensor in self.state_dict().items():
            if name.startswith("clip."):
                continue
            if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
                raise ValueError(f"Cannot load the adapter in {folder!r}: `{name}` holds NaN or inf values.")
        zero = (self.zero_shot_weights.norm(dim=-1) == 0).nonzero().flatten().tolist()
        if zero:
            raise ValueError(
                f"Cannot load the adapter in {folder!r}: `zero_shot_weights` has all-zero rows for classes "
                f"{zero[:10]}; a text weight is the unit-norm prompt embedding of its class."
            )

    # ------------------------------------------------------------------------------------------------------ helpers
    def _check_ready(self) -> None:
        """Raise when the head cannot score yet (e.g. an empty cache)."""

    def _trainable_tensors(self) -> list[nn.Parameter]:
        """The parameters that train (none: the backbone and text weights stay frozen)."""
        return []

    def _freeze(self) -> None:
        """The backbone (and every buffer) stays frozen; only the head's trainable tensors require grad."""
        self.requires_grad_(False)
        for parameter in self._trainable_tensors():
            parameter.requires_grad_(True)

    def check_labels(self, labels: torch.Tensor) -> None:
        """Raise a `ValueError` when a label lies outside [0, num_labels)."""
        if labels.numel() and (int(labels.min()) < 0 or int(labels.max()) >= self.num_classes):
            bad = sorted({int(v) for v in labels.flatten().tolist() if not 0 <= v < self.num_classes})
            raise ValueError(
                f"Labels {bad[:10]} lie outside [0, {self.num_classes}) for this model's {self.num_classes} classes."
            )

    def image_geometry(self) -> tuple[int, tuple[float, ...], tuple[float, ...]]:
        """Crop size, mean and std of the image processor (OpenAI CLIP's without one)."""
        processor = getattr(self.processor, "image_processor", None)
        default_size = default_image_size(self.config.backbone_config)
        if processor is None:
            return default_size, OPENAI_CLIP_MEAN, OPENAI_CLIP_STD
        crop = getattr(processor, "crop_size", None) or getattr(processor, "size", None)  # dict (v4) / SizeDict (v5)
        size = crop.get("height") if isinstance(crop, dict) else getattr(crop, "height", None)
        return (
            size or default_size,
            tuple(processor.image_mean or OPENAI_CLIP_MEAN),
            tuple(processor.image_std or OPENAI_CLIP_STD),
        )


def weights_fingerprint(module: nn.Module) -> str:
    """A SHA-256 over every weight of `module` (names, shapes and values rounded to bfloat16, so the dtype a backbone
    is loaded in does not change it): what an adapter-only save records of its backbone and checks at load."""
    digest = hashlib.sha256()
    for name, tensor in sorted(module.state_dict().items()):
        tensor = tensor.detach().cpu()
        if tensor.is_floating_point():
            tensor = tensor.to(torch.bfloat16)
        digest.update(f"{name}|{tuple(tensor.shape)}|{tensor.dtype}\n".encode())
        digest.update(tensor.contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def resolved_commit(name: str, revision: str | None = None) -> str | None:
    """The commit a Hub id resolves to (`revision`, default `main`), read from the HF cache's `snapshots/<sha>/`
    folder of its config.json; `None` for a local folder or when it cannot be resolved."""
    if os.path.isdir(name):
        return None
    try:
        from transformers.utils import cached_file

        path = cached_file(name, "config.json", revision=revision, _raise_exceptions_for_missing_entries=False)
    except (OSError, ValueError):
        return None
    parts = Path(path).parts if path else ()
    return parts[parts.index("snapshots") + 1] if "snapshots" in parts[:-1] else None


def _check_backbone_fingerprint(config: ZeroShotConfig, folder: str, backbone: nn.Module | None) -> None:
    """Raise a `ValueError` naming the backbone and both fingerprints when the backbone an adapter-only save loaded
    is not the one it was saved on (another folder, a moved branch, or a full save edited to `save_backbone: false`);
    with `backbone=None`, only that the save records a fingerprint (checked before the backbone is fetched)."""
    stored, name = config.backbone_fingerprint, config.backbone_name_or_path
    if not stored:
        raise ValueError(
            f"{folder!r} says it is an adapter-only save (`save_backbone: false` in config.json) but records no "
            "`backbone_fingerprint`: it was not written as one by hf-tip (a full save edited to `save_backbone: "
            "false`?), so the backbone it would load cannot be checked. Restore `save_backbone: true`, or save the "
            "adapter again with `save_pretrained(..., save_backbone=False)`."
        )
    if backbone is None:
        return
    actual = weights_fingerprint(backbone)
    if actual != stored:
        raise ValueError(
            f"The backbone {name!r} (revision {config.backbone_revision or 'main'}) loaded for the adapter-only save "
            f"{folder!r} has other weights than the one it was saved on: fingerprint {actual[:16]}..., recorded "
            f"{stored[:16]}.... Its logits would be wrong. Point `backbone_name_or_path` / `backbone_revision` at the "
            "backbone it was built on, or use a full save."
        )


def _write_card(model: ZeroShotForImageClassification, save_directory: str | os.PathLike) -> None:
    """The hf_tip model card README.md (the renderer ships with hf_tip only; remote-code users save without one)."""
    try:
        from hf_tip.hub.model_card import write_model_card
    except ImportError:
        return
    write_model_card(model, save_directory)


def _load_saved_backbone(config: ZeroShotConfig, folder: str, dtype: torch.dtype, hub_kwargs: dict) -> PreTrainedModel:
    """The backbone an adapter-only save names (`backbone_name_or_path` at `backbone_revision`), in `dtype`; raises an
    `OSError` naming it and the adapter folder when it cannot be loaded, a `ValueError` when it is another model."""
    name, revision = config.backbone_name_or_path, config.backbone_revision
    if not name:
        raise ValueError(
            f"{folder!r} is an adapter-only save (`save_backbone: false` in config.json) but names no backbone "
            "(`backbone_name_or_path`)."
        )
    if name.startswith("."):
        raise ValueError(
            f"The adapter-only save {folder!r} names its backbone by the relative path {name!r}, which resolves "
            f"against the working folder ({os.getcwd()!r}), not the adapter's. Set `backbone_name_or_path` in its "
            "config.json to the backbone's absolute path or Hub id."
        )
    try:
        backbone = AutoModel.from_pretrained(name, revision=revision, dtype=dtype, **hub_kwargs)
    except (OSError, ValueError) as error:
        raise OSError(
            f"Could not load the backbone {name!r} (revision {revision or 'main'}) of the adapter-only save {folder!r}: "
            f"{error}\nThe adapter holds no backbone weights; make {name!r} reachable (online, in the HF cache, or "
            "as a local folder), or use a full save (`save_pretrained(..., save_backbone=True)`)."
        ) from error
    expected = config.backbone_config
    if backbone.config.model_type != expected.model_type or feature_dim(backbone.config) != feature_dim(expected):
        raise ValueError(
            f"The backbone {name!r} of the adapter-only save {folder!r} is a {backbone.config.model_type} with "
            f"{feature_dim(backbone.config)}-dim features, but the adapter was built on a {expected.model_type} with "
            f"{feature_dim(expected)}-dim features."
        )
    return backbone


def _load_processor(config: ZeroShotConfig, folder: str, hub_kwargs: dict) -> ProcessorMixin | None:
    """The saved processor; for an adapter-only save, the backbone's processor with the saved image processor."""
    if config.save_backbone:
        try:
            return AutoProcessor.from_pretrained(folder, **hub_kwargs)
        except (OSError, ValueError, TypeError, KeyError):
            return None
    backbone_kwargs = {k: v for k, v in hub_kwargs.items() if k in BACKBONE_HUB_KWARGS}
    try:
        processor = AutoProcessor.from_pretrained(
            config.backbone_name_or_path, revision=config.backbone_revision, **backbone_kwargs
        )
    except (OSError, ValueError, TypeError, KeyError):
        return None
    try:
        processor.image_processor = AutoImageProcessor.from_pretrained(folder, **hub_kwargs)
    except (OSError, ValueError, TypeError, KeyError):
        pass  # the backbone's own image processor
    return processor


def _load_backbone(
    model_or_path, processor, revision: str | None = None
) -> tuple[PreTrainedModel, ProcessorMixin, str | None]:
    """The backbone, its processor and the name it was loaded by (`None` for a loaded model)."""
    if isinstance(model_or_path, PreTrainedModel):
        if processor is None:
            raise ValueError(
                "Pass `processor=` (the backbone's processor) with a loaded model: prompts need its tokenizer."
            )
        return model_or_path, processor, None
    name = str(model_or_path)
    if (os.path.isabs(name) or name.startswith(".")) and not os.path.isdir(name):
        raise OSError(f"Could not load the CLIP backbone {name!r}: no such folder.")
    try:
        clip = AutoModel.from_pretrained(name, revision=revision)
        processor = processor if processor is not None else AutoProcessor.from_pretrained(name, revision=revision)
    except (OSError, ValueError) as error:
        raise OSError(
            f"Could not load the CLIP backbone {name!r}: {error}\nWithout access to the Hugging Face Hub, pass a local "
            "folder holding a CLIP-family checkpoint and its processor (`model.save_pretrained` + "
            "`processor.save_pretrained`) as the model name or path."
        ) from error
    if not hasattr(clip, "get_image_features") or not hasattr(clip, "get_text_features"):
        raise ValueError(
            f"{name!r} is a {type(clip).__name__}, not a dual encoder with `get_image_features` / `get_text_features` "
            "(CLIP, SigLIP, SigLIP 2, Chinese-CLIP, AltCLIP)."
        )
    return clip, processor, name


__all__ = ["ZeroShotForImageClassification", "ZeroShotPreTrainedModel", "resolved_commit", "weights_fingerprint"]
