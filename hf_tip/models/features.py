"""The only code that calls the dual encoder's towers: batching, `no_grad`, L2 normalisation and output unwrapping."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor

import torch
from PIL import Image
from tqdm.auto import tqdm

from .cache import normalize
from .families import image_inputs, text_inputs
from .images import augment, to_pixel_values, to_rgb
from .seeding import seeded_generator


def _unwrap(output) -> torch.Tensor:
    """transformers 5 returns a model output from `get_*_features` (take `pooler_output`); 4.x returned a tensor."""
    return output if isinstance(output, torch.Tensor) else output.pooler_output


def feature_dim(backbone_config) -> int:
    """The dimension `D` of a dual encoder's image and text features: the projection dim where the family has one
    (CLIP, Chinese-CLIP, AltCLIP), else the vision tower's hidden size (SigLIP, SigLIP 2)."""
    dim = getattr(backbone_config, "projection_dim", None)
    return int(dim) if dim else int(backbone_config.vision_config.hidden_size)


def encode_images(
    clip,
    pixel_values: torch.Tensor,
    normalized: bool = True,
    pixel_attention_mask: torch.Tensor | None = None,
    spatial_shapes: torch.Tensor | None = None,
) -> torch.Tensor:
    """Image features [B,D] of pixel values [B,3,H,W] (SigLIP 2: its processor's patches [B,N,p·p·3] with
    `pixel_attention_mask` [B,N] and `spatial_shapes` [B,2], or images, cut into patches here), on the backbone's
    device and dtype."""
    device = clip.logit_scale.device
    inputs = image_inputs(clip.config, pixel_values, pixel_attention_mask, spatial_shapes)
    inputs["pixel_values"] = inputs["pixel_values"].to(device=device, dtype=clip.dtype)
    inputs.update({k: v.to(device) for k, v in inputs.items() if k != "pixel_values"})
    features = _unwrap(clip.get_image_features(**inputs))
    return normalize(features) if normalized else features


@torch.no_grad()
def encode_text(clip, tokenizer, texts: Sequence[str], batch_size: int = 256) -> torch.Tensor:
    """L2-normalised text features [T,D] (float32), prompts padded as the backbone's family requires."""
    device = clip.logit_scale.device
    out = []
    for start in range(0, len(texts), batch_size):
        tokens = text_inputs(tokenizer, list(texts[start : start + batch_size]), clip.config)
        out.append(normalize(_unwrap(clip.get_text_features(**tokens.to(device)))).float())
    return torch.cat(out)


def zero_shot_weights(clip, tokenizer, class_names: Sequence[str], templates: Sequence[str]) -> torch.Tensor:
    """Zero-shot classifier W [C,D]: fill each template per class, normalise, average over templates, normalise."""
    texts = [template.format(name) for name in class_names for template in templates]
    features = encode_text(clip, tokenizer, texts).view(len(class_names), len(templates), -1)  # [C,T,D]
    return normalize(features.mean(dim=1))


@torch.no_grad()
def encode_batches(
    clip, batches: Iterable[torch.Tensor | dict], normalized: bool = True, progress: Callable | None = None
) -> torch.Tensor:
    """Concatenated features [N,D] (float32, CPU) of an iterable of pixel batches [b,3,H,W] (or of the image
    processor's output dicts)."""
    out = []
    for batch in batches:
        inputs = batch if isinstance(batch, dict) else {"pixel_values": batch}
        out.append(encode_images(clip, normalized=normalized, **inputs).float().cpu())
        if progress is not None:
            progress(inputs["pixel_values"].shape[0])
    return torch.cat(out)


def view_generator(seed: int, epoch: int, index: int) -> torch.Generator:
    """The random stream of augmented view `epoch` of image `index` (stream `("view", epoch, index)` of
    `data.shuffle_keys`'s scheme): independent of batching and of how the set is sharded across processes, so 1 and
    N processes draw identical views."""
    return seeded_generator(seed, "view", epoch, index)


def iter_augmented_features(
    clip,
    images: Sequence[Image.Image],
    epochs: int,
    image_size: int,
    mean: Sequence[float],
    std: Sequence[float],
    seed: int = 1,
    batch_size: int = 32,
    indices: Sequence[int] | None = None,
    show_progress: bool = True,
    first_epoch: int = 0,
) -> Iterator[tuple[int, int, torch.Tensor]]:
    """Yield `(epoch, start, features [b,D])`: raw (unnormalised, float32, CPU) CLIP features of fresh augmented views
    of `images[start:start+b]`, pass after pass in a fixed order. View `(epoch, i)` is drawn from
    `view_generator(seed, epoch, indices[i])` (`indices` defaults to `range(len(images))`), and the next batch is
    augmented on a worker thread while the current one is encoded. Passes are numbered `first_epoch`,
    `first_epoch + 1`, ... (so one later pass can be drawn on its own, as Tip-Adapter-F's online augmentation does)."""
    indices = list(range(len(images))) if indices is None else list(indices)
    steps = [(e, s) for e in range(first_epoch, first_epoch + epochs) for s in range(0, len(images), batch_size)]

    def views(step: tuple[int, int]) -> torch.Tensor:
        epoch, start = step
        batch = range(start, min(start + batch_size, len(images)))
        return to_pixel_values(
            [augment(images[i], image_size, view_generator(seed, epoch, indices[i])) for i in batch], mean, std
        )

    bar = tqdm(total=epochs * len(images), desc="Encoding augmented views", unit="view", disable=not show_progress)
    with torch.no_grad(), ThreadPoolExecutor(max_workers=1) as pool:
        pending = pool.submit(views, steps[0]) if steps else None
        for k, (epoch, start) in enumerate(steps):
            pixel_values = pending.result()
            if k + 1 < len(steps):
                pending = pool.submit(views, steps[k + 1])
            feats = encode_images(clip, pixel_values, normalized=False).float().cpu()
            bar.update(feats.shape[0])
            yield epoch, start, feats
    bar.close()


def _pixel_batches(images: Sequence, image_processor, batch_size: int) -> Iterator[dict[str, torch.Tensor]]:
    """The image processor's outputs per batch (`pixel_values` [b,3,H,W], SigLIP 2: patches and their mask and
    shapes), the next one prepared on a worker thread."""
    starts = list(range(0, len(images), batch_size))

    def process(start: int) -> dict[str, torch.Tensor]:
        batch = [to_rgb(image) for image in images[start : start + batch_size]]
        return dict(image_processor(batch, return_tensors="pt"))

    with ThreadPoolExecutor(max_workers=1) as pool:
        pending = pool.submit(process, starts[0]) if starts else None
        for k in range(len(starts)):
            pixel_values = pending.result()
            if k + 1 < len(starts):
                pending = pool.submit(process, starts[k + 1])
            yield pixel_values
