"""What a fine-tuning run measures and reports: accuracies (decided on the main process, broadcast so that every
process takes the same decisions), the training-free Tip-Adapter it starts from, and the results once trained."""

from __future__ import annotations

import torch
from accelerate import Accelerator
from accelerate.logging import get_logger
from accelerate.utils import broadcast, broadcast_object_list

from ..models.cache import tip_logits
from ..pipeline.evaluation import compute_accuracy
from .args import FinetuneConfig
from .views import encode_split, encode_view_bank

logger = get_logger(__name__)
EVAL_CHUNK = 4096  # validation rows per forward: bounds the [rows, NK] affinity


def accuracy(accelerator: Accelerator, logits: torch.Tensor, labels: torch.Tensor) -> float:
    """`compute_accuracy` on the main process, broadcast so that every process takes the same decisions."""
    value = [compute_accuracy(logits.float().cpu(), labels.cpu()) if accelerator.is_main_process else None]
    if accelerator.num_processes > 1:
        broadcast_object_list(value)
    return value[0]


@torch.no_grad()
def model_accuracy(accelerator: Accelerator, model, embeds: torch.Tensor, labels: torch.Tensor) -> float:
    """Accuracy of the model as it is now (`model(image_embeds=...).logits`) on normalised features [N,D]."""
    logits = [model(image_embeds=embeds[i : i + EVAL_CHUNK]).logits for i in range(0, len(embeds), EVAL_CHUNK)]
    return accuracy(accelerator, torch.cat(logits) if logits else embeds.new_zeros(0, 0), labels)


@torch.no_grad()
def _tip_accuracy(accelerator, model, embeds, labels, keys: torch.Tensor, alpha: float, beta: float) -> float:
    """Accuracy of the Tip logits of normalised features [N,D] for given keys [NK,D] and α/β."""
    weights = model.zero_shot_weights  # features are float32: cast to the head's dtype (a fp16/bf16 model)
    scale = model.clip.logit_scale.exp().to(weights)
    logits = tip_logits(embeds.to(weights), weights, keys.detach().to(weights), model.cache_labels, scale, alpha, beta)
    return accuracy(accelerator, logits, labels)


def _accuracy_key(model, training_free) -> str:
    """The result key of the trained model: `tip_adapter_f_accuracy`, else its method's (`clip_adapter_accuracy`),
    as the model card names results."""
    return (
        "tip_adapter_f_accuracy"
        if training_free is not None
        else f"{model.config.model_type.replace('-', '_')}_accuracy"
    )


def _accuracies(accelerator, model, embeds, labels, training_free) -> dict:
    """Zero-shot CLIP, the training-free Tip-Adapter (its keys, α, β) and the model as it is now, on one split."""
    zero_shot = accuracy(accelerator, model.zero_shot_logits(embeds), labels)
    if training_free is None:  # another trained head
        trained = model_accuracy(accelerator, model, embeds, labels)
        return {"zero_shot_accuracy": zero_shot, _accuracy_key(model, None): trained}
    return {
        "zero_shot_accuracy": zero_shot,
        "tip_adapter_accuracy": _tip_accuracy(accelerator, model, embeds, labels, *training_free),
        "tip_adapter_f_accuracy": model_accuracy(accelerator, model, embeds, labels),
    }


def build_training_free(accelerator, model, images, labels, config: FinetuneConfig, val_embeds, val_labels):
    """For a Tip-Adapter: make a zero-shot one (empty cache) a training-free Tip-Adapter (keys: the mean of the raw
    features of views `0..E-1`, encoded sharded, as `build_cache` makes them; α/β searched on validation), make keys
    and α/β bit-identical on every process, and return `(keys, alpha, beta)`. Other heads: `None`."""
    if not hasattr(model, "cache_keys"):
        return None
    if model.cache_keys.shape[0] == 0:
        logger.info("Building the training-free Tip-Adapter cache from the few-shot set", main_process_only=True)
        epochs = config.augment_epochs or model.config.augment_epochs
        views = encode_view_bank(accelerator, model, images, epochs, config.seed, config.encode_batch_size)
        model.fit(views, labels, num_shots=config.num_shots or model.config.num_shots, seed=config.seed)
        model.search_hyperparameters(val_embeds, val_labels)
    if accelerator.num_processes > 1:  # identical by construction; broadcast so that no rounding can differ
        with torch.no_grad():
            model.cache_keys.copy_(broadcast(model.cache_keys.detach().clone().contiguous()))
        model.config.alpha, model.config.beta = broadcast_object_list([model.config.alpha, model.config.beta])
    return model.cache_keys.detach().clone(), model.config.alpha, model.config.beta


def _check_identical(accelerator: Accelerator, model) -> None:
    """Raise when a trained parameter differs between processes (a bug: gradients are summed identically)."""
    for name, param in model.named_parameters():
        if param.requires_grad:
            every_rank = accelerator.gather(param.detach()[None].contiguous())
            if not bool((every_rank == every_rank[:1]).all()):
                raise RuntimeError(f"The fine-tuned `{name}` differs between processes; please report this as a bug.")


def final_results(accelerator, model, dataset, config: FinetuneConfig, run, training_free, validation) -> dict:
    """After training (best epoch installed): search α/β again on validation (Tip-Adapter), check every process
    agrees, report validation and (read once, now) test, and describe the run in `model.card_data`."""
    val_embeds, val_labels = validation
    if training_free is not None:
        model.search_hyperparameters(val_embeds, val_labels)
    _check_identical(accelerator, model)
    signature, state = run.state.signature, run.state
    results = {
        "num_processes": accelerator.num_processes, "num_shots": config.num_shots or model.config.num_shots,
        "num_examples": len(run.labels), "num_train_epochs": config.num_train_epochs,
        "train_batch_size": run.train_batch_size, "per_device_train_batch_size": config.per_device_train_batch_size,
        "augmentation": signature["augmentation"], "first_training_view": run.first_view,
        "optimizer": config.optimizer, "learning_rate": config.learning_rate, "trained": signature["trained"],
        "best_epoch": state.best_epoch, "keys_identical_across_processes": True, "history": state.history,
        "recipe": config.recipe(),
    }  # fmt: skip
    if training_free is not None:
        results.update(
            train_alpha=config.alpha, train_beta=config.beta, tip_adapter_alpha=training_free[1],
            tip_adapter_beta=training_free[2], alpha=model.config.alpha, beta=model.config.beta,
        )  # fmt: skip
    results["validation"] = _accuracies(accelerator, model, val_embeds, val_labels, training_free)
    final_key = _accuracy_key(model, training_free)
    results["eval_accuracy"], results["eval_split"] = results["validation"][final_key], "validation"
    if "test" in dataset:  # read once, now
        test_embeds, test_labels = encode_split(accelerator, model, dataset["test"], config)
        results["test"] = _accuracies(accelerator, model, test_embeds, test_labels, training_free)
        results["eval_split"], results["test_accuracy"] = "test", results["test"][final_key]
    results.update(results[results["eval_split"]])
    if hasattr(model, "card_data"):
        model.card_data.update(
            dataset_name=config.dataset_name, eval_split=results["eval_split"], num_shots=results["num_shots"],
            results=dict(results[results["eval_split"]]), command=config.command,
        )  # fmt: skip
    return results


__all__ = ["EVAL_CHUNK", "accuracy", "build_training_free", "final_results", "model_accuracy"]
