"""The interactive page of `hf-tip app` (Gradio): classify an image, show the cache examples that drove the decision,
add examples or classes live, tune alpha/beta on validation data, save or push the updated adapter.

`AppSession` holds the model and does the work (plain Python, tested without a browser); `build_blocks` lays out the
page over it. Every handler turns a `ValueError` / `OSError` into a visible message and leaves the model unchanged.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
from PIL import Image, UnidentifiedImageError

from ..models.thumbnails import NO_THUMBNAILS
from .explain import explain_prediction

TOP_K = 5
TOP_N = 6  # thumbnails shown per class


@dataclass
class Prediction:
    """What the page shows for one image: `{class: probability}` of the model and of zero-shot CLIP, the evidence
    galleries `[(thumbnail, caption)]` of the predicted class and the runner-up, and a note."""

    adapter: dict[str, float]
    zero_shot: dict[str, float]
    predicted: list[tuple[Image.Image, str]]
    runner_up: list[tuple[Image.Image, str]]
    why: str


def open_image(path: str | os.PathLike | None) -> Image.Image:
    """The uploaded file as an RGB image; a `ValueError` naming the file when it is missing or not an image."""
    if path is None:
        raise ValueError("Upload an image first.")
    try:
        with Image.open(path) as image:
            return image.convert("RGB")
    except (OSError, UnidentifiedImageError):
        raise ValueError(f"{os.path.basename(str(path))!r} is not an image file (PNG, JPEG, WebP, ...).") from None


class AppSession:
    r"""
    The model behind the page and what it can do.

    Args:
        model ([`TipAdapterForImageClassification`] or another hf-tip model): a loaded model with a processor.
        validation (`tuple[torch.Tensor, torch.Tensor]`, *optional*): validation features `[N, D]` and labels `[N]`
            (indices of the model's classes), for the alpha/beta sliders.
    """

    def __init__(self, model, validation: tuple[torch.Tensor, torch.Tensor] | None = None):
        if getattr(model, "processor", None) is None:
            raise ValueError("The model has no processor (image processor + tokenizer) saved with it; re-save it.")
        self.model = model.eval()
        self.validation = validation

    @property
    def class_names(self) -> list[str]:
        return [self.model.config.id2label[i] for i in range(len(self.model.config.id2label))]

    @property
    def has_cache(self) -> bool:
        """Whether the head is a key-value cache (the "why" view and live updates apply)."""
        return hasattr(self.model, "cache_keys")

    @property
    def can_update(self) -> bool:
        return hasattr(self.model, "add_examples") and hasattr(self.model, "add_classes")

    @torch.no_grad()
    def embed(self, image: Image.Image) -> torch.Tensor:
        """The image's L2-normalised features [1,D]."""
        processor = self.model.processor.image_processor
        pixel_values = processor([image], return_tensors="pt")["pixel_values"]
        return self.model.get_image_features(pixel_values)

    @torch.no_grad()
    def predict(self, image: Image.Image) -> Prediction:
        """Top-k of the model and of zero-shot CLIP, and the evidence of the cache when it has one."""
        embeds = self.embed(image)
        logits = self.model(image_embeds=embeds).logits[0].float()
        zero_shot = self.model.zero_shot_logits(embeds)[0].float()
        names = self.class_names
        prediction = Prediction(_top(logits, names), _top(zero_shot, names), [], [], "")
        if not self.has_cache or self.model.cache_keys.shape[0] == 0:
            prediction.why = "This model has no cache of examples: only its prediction can be shown."
            return prediction
        evidence = explain_prediction(
            logits,
            embeds[0],
            self.model.cache_keys.detach(),
            self.model.cache_labels,
            self.model.config.alpha,
            self.model.config.beta,
            TOP_N,
        )
        lines = [
            f"**{names[e.class_index]}**: logit {e.logit:.3f}, of which {e.cache_total:.3f} from its cache examples"
            for e in evidence
        ]
        if not self.model.has_thumbnails:
            prediction.why = "\n\n".join([*lines, NO_THUMBNAILS])
            return prediction
        galleries = [self._gallery(e.entries, e.weights) for e in evidence]
        prediction.predicted = galleries[0]
        prediction.runner_up = galleries[1] if len(galleries) > 1 else []
        prediction.why = "\n\n".join(lines)
        return prediction

    def _gallery(self, entries: list[int], weights: list[float]) -> list[tuple[Image.Image, str]]:
        thumbnails = self.model.thumbnails
        return [
            (Image.fromarray(thumbnails[i].numpy()), f"weight {w:.3f} (#{i})")
            for i, w in zip(entries, weights, strict=True)
        ]

    def add_example(self, image: Image.Image, class_name: str | None) -> str:
        """Add `image` as an example of an existing class; returns what changed."""
        if not class_name:
            raise ValueError("Choose the class this image shows.")
        before = self.predict(image).adapter
        self.model.add_examples([image], [class_name])
        return _change(before, self.predict(image).adapter, f"Added the image as an example of {class_name!r}.")

    def add_class(self, image: Image.Image | None, name: str | None) -> str:
        """Add a new class named `name` (with `image` as its first example when given); returns what changed."""
        name = (name or "").strip()
        if not name:
            raise ValueError("The new class needs a name: type one first.")
        if image is None:
            self.model.add_classes([name])
            return f"Added the class {name!r} (text prompt only, no example)."
        before = self.predict(image).adapter
        self.model.add_classes([name], [image])
        return _change(before, self.predict(image).adapter, f"Added the class {name!r} with this image as example.")

    @torch.no_grad()
    def set_hyperparameters(self, alpha: float, beta: float) -> str:
        """Set alpha and beta in the config; returns the validation accuracy at these values."""
        if alpha < 0 or beta < 0:
            raise ValueError(f"alpha and beta must be >= 0, got {alpha}, {beta}.")
        self.model.config.alpha, self.model.config.beta = float(alpha), float(beta)
        if self.validation is None:
            return f"alpha={alpha:.3g}, beta={beta:.3g}"
        embeds, labels = self.validation
        accuracy = (self.model(image_embeds=embeds).logits.argmax(-1).cpu() == labels).float().mean().item()
        return (
            f"Validation accuracy {100 * accuracy:.2f}% on {len(labels)} images (alpha={alpha:.3g}, beta={beta:.3g})"
        )

    def save(self, folder: str | None, repo_id: str | None = None) -> str:
        """Save the (updated) model to `folder`; push it to `repo_id` when given."""
        folder = (folder or "").strip()
        if not folder:
            raise ValueError("Type the folder to save the adapter into.")
        self.model.save_pretrained(folder)
        message = f"Saved the adapter ({len(self.class_names)} classes) to {os.path.abspath(folder)}."
        if repo_id and repo_id.strip():
            from ..hub.push import push_folder

            commit = push_folder(folder, repo_id.strip())
            message += f" Pushed to {commit.repo_url.repo_id}."
        return message


def _top(logits: torch.Tensor, names: list[str]) -> dict[str, float]:
    """`{class: probability}` of the `TOP_K` most probable classes."""
    probs = logits.softmax(-1)
    values, indices = probs.topk(min(TOP_K, probs.numel()))
    return {names[i]: float(v) for v, i in zip(values.tolist(), indices.tolist(), strict=True)}


def _change(before: dict[str, float], after: dict[str, float], done: str) -> str:
    """A sentence on how the top prediction moved."""
    (b_name, b_p), (a_name, a_p) = next(iter(before.items())), next(iter(after.items()))
    return f"{done} Prediction: {b_name} ({100 * b_p:.1f}%) → {a_name} ({100 * a_p:.1f}%)."


# --------------------------------------------------------------------------------------------------------- the page
def _safe(handler, outputs: int):
    """Wrap a handler so that a `ValueError` / `OSError` becomes the message (last output) and nothing else changes."""
    import gradio as gr

    def wrapped(*args):
        try:
            return handler(*args)
        except (ValueError, OSError) as error:
            if outputs == 1:
                return f"⚠️ {error}"
            return (*([gr.skip()] * (outputs - 1)), f"⚠️ {error}")

    return wrapped


def build_blocks(session: AppSession, title: str = "Tip-Adapter", note: str | None = None):
    """The Gradio page over `session` (see the module docstring)."""
    import gradio as gr

    with gr.Blocks(title=title) as blocks:
        gr.Markdown(f"# {title}\n{note or ''}")
        with gr.Row():
            with gr.Column(scale=1):
                upload = gr.File(label="Image to classify", type="filepath", elem_id="upload")
                preview = gr.Image(label="Image", type="pil", interactive=False, height=220, elem_id="preview")
            with gr.Column(scale=1):
                adapter = gr.Label(label="Tip-Adapter", num_top_classes=TOP_K, elem_id="adapter-label")
                zero_shot = gr.Label(label="Zero-shot CLIP", num_top_classes=TOP_K, elem_id="zero-shot-label")
        message = gr.Markdown(elem_id="message")
        why_box = _why_section(session)
        update = _update_section(session)
        save = _save_section()
        tune = _tune_section(session)
        classify_out = [preview, adapter, zero_shot, *why_box, message]

        def classify(path):
            image = open_image(path)
            p = session.predict(image)
            return image, p.adapter, p.zero_shot, p.predicted, p.runner_up, p.why, "Classified."

        upload.change(_safe(classify, len(classify_out)), [upload], classify_out)
        if update is not None:
            class_choice, add_example, new_name, add_class = update

            def add(kind):
                def handler(path, value):
                    if kind == "class" and not (value or "").strip():
                        raise ValueError("The new class needs a name: type one first.")
                    image = open_image(path) if kind == "example" or path is not None else None
                    done = session.add_example(image, value) if kind == "example" else session.add_class(image, value)
                    shown = classify(path)[:-1] if image is not None else [gr.skip()] * (len(classify_out) - 1)
                    return (*shown, gr.update(choices=session.class_names), done)

                return handler

            outputs = [*classify_out[:-1], class_choice, message]
            add_example.click(_safe(add("example"), len(outputs)), [upload, class_choice], outputs)
            add_class.click(_safe(add("class"), len(outputs)), [upload, new_name], outputs)
        folder, repo, save_button = save
        save_button.click(_safe(session.save, 1), [folder, repo], [message])
        if tune is not None:
            alpha, beta, accuracy = tune
            for slider in (alpha, beta):
                slider.release(_safe(session.set_hyperparameters, 1), [alpha, beta], [accuracy])
    return blocks


def _why_section(session: AppSession):
    import gradio as gr

    gr.Markdown("## Why: the cache examples that weighed most (α·exp(-β(1-a)) each)")
    why = gr.Markdown(elem_id="why")
    with gr.Row(visible=session.has_cache):
        kwargs = dict(columns=TOP_N // 2, height=260, fit_columns=False, object_fit="contain", allow_preview=False)
        predicted = gr.Gallery(label="For the predicted class", elem_id="why-predicted", **kwargs)
        runner_up = gr.Gallery(label="For the runner-up", elem_id="why-runner-up", **kwargs)
    return predicted, runner_up, why


def _update_section(session: AppSession):
    import gradio as gr

    if not session.can_update:
        return None
    gr.Markdown("## Teach it: add the uploaded image as an example, or as a new class")
    with gr.Row():
        class_choice = gr.Dropdown(session.class_names, label="Class of this image", elem_id="class-choice")
        add_example = gr.Button("Add as example", elem_id="add-example")
        new_name = gr.Textbox(label="New class name", elem_id="new-class-name")
        add_class = gr.Button("Add as a new class", elem_id="add-class")
    return class_choice, add_example, new_name, add_class


def _save_section():
    import gradio as gr
    from huggingface_hub import get_token

    gr.Markdown("## Save the updated adapter")
    with gr.Row():
        folder = gr.Textbox(label="Folder", value="tip-adapter-updated", elem_id="save-folder")
        repo = gr.Textbox(label="Push to Hub repo (user/name)", visible=get_token() is not None, elem_id="push-repo")
        save_button = gr.Button("Save", elem_id="save")
    return folder, repo, save_button


def _tune_section(session: AppSession):
    import gradio as gr

    if session.validation is None or not session.has_cache:
        return None
    config = session.model.config
    gr.Markdown("## α and β on the validation data")
    with gr.Row():
        alpha = gr.Slider(0.0, max(10.0, config.alpha), value=config.alpha, step=0.05, label="α", elem_id="alpha")
        beta = gr.Slider(0.0, max(20.0, config.beta), value=config.beta, step=0.1, label="β", elem_id="beta")
    accuracy = gr.Markdown(session.set_hyperparameters(config.alpha, config.beta), elem_id="accuracy")
    return alpha, beta, accuracy


THEME_FONTS = dict(font=["ui-sans-serif", "system-ui", "sans-serif"], font_mono=["ui-monospace", "monospace"])


def launch(blocks, port: int | None = None, host: str | None = None) -> None:
    """Serve the page (offline-friendly: system fonts, no analytics), blocking."""
    import gradio as gr

    blocks.launch(
        server_name=host or os.environ.get("GRADIO_SERVER_NAME", "127.0.0.1"),
        server_port=port or int(os.environ.get("GRADIO_SERVER_PORT", 7860)),
        theme=gr.themes.Default(**THEME_FONTS),
        footer_links=[],
        show_error=False,
    )
