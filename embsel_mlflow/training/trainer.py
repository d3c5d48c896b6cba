"""Fine-tune a SentenceTransformer with ``SentenceTransformerTrainer``: arguments, callbacks, resume."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from embsel_mlflow.errors import ConfigError
from embsel_mlflow.models.hub_loading import bars_off_terminal, no_loading_bars
from embsel_mlflow.training.callbacks import MetricsCallback, MetricSink, StopOnSignal

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

    from embsel_mlflow.config import TrainConfig
    from embsel_mlflow.training.evaluator import TaskEvaluator
    from embsel_mlflow.training.pairs import TrainPairs

CHECKPOINT_PREFIX = "checkpoint"  # transformers' checkpoint-<step> folders
_TRAINER_STATE = "trainer_state.json"  # written last into a checkpoint: its presence marks it complete


@dataclass
class TrainingOutcome:
    global_step: int
    stopped_by: int | None  # the signal that stopped training, or None
    validation_step: int | None = None  # the step of the last validation during training
    validation_score: float | None = None  # its main score


def mixed_precision(name: str, device: str) -> tuple[bool, bool]:
    """(bf16, fp16) for ``train.precision`` on ``device``; refuses what the hardware cannot do."""
    import torch

    cuda = device.startswith("cuda") and torch.cuda.is_available()
    bf16_ok = cuda and torch.cuda.is_bf16_supported()
    if name == "auto":
        return bf16_ok, False
    if name == "fp32":
        return False, False
    if name == "fp16":
        if not cuda:
            raise ConfigError(
                "train.precision=fp16 needs a CUDA GPU; use train.precision=fp32 (or auto) on CPU"
            )
        return False, True
    if name == "bf16":
        if cuda and not bf16_ok:
            raise ConfigError("this GPU has no bf16; use train.precision=fp16 or fp32")
        return True, False
    raise ConfigError(f"unknown train.precision '{name}': use auto, fp32, fp16 or bf16")


def _interval(steps: int | None) -> tuple[str, int | None]:
    """(strategy, steps): None = once per epoch, 0 = never, N = every N steps."""
    if steps is None:
        return "epoch", None
    if steps <= 0:
        return "no", None
    return "steps", int(steps)


def training_arguments(cfg: TrainConfig, output_dir: Path, *, device: str, main_metric: str | None) -> Any:
    """``SentenceTransformerTrainingArguments`` from ``train.*`` (MLflow reporting off: we log)."""
    from sentence_transformers import SentenceTransformerTrainingArguments
    from sentence_transformers.base.sampler import BatchSamplers

    bf16, fp16 = mixed_precision(cfg.precision, device)
    eval_strategy, eval_steps = _interval(cfg.eval_steps) if main_metric else ("no", None)
    save_strategy, save_steps = _interval(cfg.save_steps)
    early = cfg.early_stopping_patience is not None
    if early:
        if eval_strategy == "no":
            raise ConfigError(
                "train.early_stopping_patience needs evaluations: set train.eval_steps to null or N > 0"
            )
        # the best checkpoint must exist when training stops: save at every evaluation
        save_strategy, save_steps = eval_strategy, eval_steps
    sampler = (
        BatchSamplers.NO_DUPLICATES if cfg.batch_sampler == "no_duplicates" else BatchSamplers.BATCH_SAMPLER
    )
    return SentenceTransformerTrainingArguments(
        output_dir=str(output_dir),
        num_train_epochs=cfg.epochs,
        max_steps=cfg.max_steps,
        per_device_train_batch_size=cfg.batch_size,
        per_device_eval_batch_size=cfg.batch_size,
        gradient_accumulation_steps=cfg.gradient_accumulation_steps,
        learning_rate=cfg.learning_rate,
        warmup_steps=cfg.warmup_ratio,  # transformers 5: a float in [0, 1) is a ratio of the total steps
        weight_decay=cfg.weight_decay,
        seed=cfg.seed,
        data_seed=cfg.seed,
        bf16=bf16,
        fp16=fp16,
        use_cpu=not device.startswith("cuda"),
        batch_sampler=sampler,
        eval_strategy=eval_strategy,
        eval_steps=eval_steps,
        save_strategy=save_strategy,
        save_steps=save_steps if save_steps is not None else 500,
        save_total_limit=cfg.save_total_limit,
        logging_strategy="steps",
        logging_steps=cfg.logging_steps,
        load_best_model_at_end=early,
        metric_for_best_model=main_metric if early else None,
        greater_is_better=True if early else None,
        report_to="none",  # transformers' MLflowCallback would log a second copy of every metric
        disable_tqdm=True,
        dataloader_drop_last=False,
    )


def last_checkpoint(output_dir: Path) -> Path | None:
    """The newest complete ``checkpoint-<step>`` folder under ``output_dir``, or None.

    A process killed while saving (SIGKILL, out of memory) leaves a folder without the trainer
    state, which transformers writes last: such a folder is passed over for the one before it.
    """
    if not output_dir.is_dir():
        return None
    steps = []
    for folder in output_dir.glob(f"{CHECKPOINT_PREFIX}-*"):
        suffix = folder.name.removeprefix(f"{CHECKPOINT_PREFIX}-")
        if suffix.isdigit() and folder.is_dir() and (folder / _TRAINER_STATE).is_file():
            steps.append((int(suffix), folder))
    return max(steps)[1] if steps else None


def check_checkpoint(checkpoint: Path) -> None:
    """Refuse (one line) a checkpoint whose files cannot be read back, before training resumes from it.

    The trainer state must parse, each safetensors file must open, and each torch file (a zip
    archive: optimizer, scheduler, RNG state) must pass its CRC check.
    """
    import json
    import zipfile

    from safetensors import SafetensorError, safe_open

    def damaged(name: str, reason: str) -> ConfigError:
        return ConfigError(
            f"train.resume: checkpoint {checkpoint} is damaged ({name}: {reason}); delete that folder to "
            "resume from the checkpoint before it, or start a new run"
        )

    try:
        json.loads((checkpoint / _TRAINER_STATE).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as err:
        raise damaged(_TRAINER_STATE, type(err).__name__) from err
    for path in sorted(checkpoint.rglob("*")):
        if path.suffix == ".safetensors":
            try:
                with safe_open(str(path), framework="pt"):
                    pass
            except (SafetensorError, OSError) as err:
                raise damaged(path.name, "unreadable safetensors") from err
        elif path.suffix in {".pt", ".pth", ".bin"}:
            try:
                with zipfile.ZipFile(path) as archive:
                    bad = archive.testzip()
            except (zipfile.BadZipFile, OSError) as err:
                raise damaged(path.name, "not a complete torch file") from err
            if bad is not None:
                raise damaged(path.name, f"corrupt entry {bad}")


def fine_tune(
    model: SentenceTransformer,
    pairs: TrainPairs,
    loss: Any,
    args: Any,
    cfg: TrainConfig,
    *,
    evaluator: TaskEvaluator | None,
    sink: MetricSink,
    resume_from: Path | None = None,
) -> TrainingOutcome:
    """Train ``model`` in place on ``pairs`` with ``args`` (``training_arguments``).

    A SIGINT/SIGTERM/SIGHUP finishes the current step, saves a checkpoint and returns with
    ``stopped_by`` set; the caller ends the run KILLED. ``resume_from`` continues a checkpoint
    with its step count, optimiser, scheduler and data order.
    """
    from sentence_transformers import SentenceTransformerTrainer
    from transformers import EarlyStoppingCallback

    if resume_from is not None:
        check_checkpoint(resume_from)
    main_metric = evaluator.primary_metric if evaluator is not None else None
    stop = StopOnSignal()
    callbacks: list[Any] = [
        MetricsCallback(
            sink,
            samples_per_step=cfg.batch_size * cfg.gradient_accumulation_steps,
            main_metric=main_metric or "",
        ),
        stop,
    ]
    if cfg.early_stopping_patience is not None:
        callbacks.append(EarlyStoppingCallback(early_stopping_patience=cfg.early_stopping_patience))
    from sentence_transformers.base import model_card

    with bars_off_terminal(model_card):  # its "Computing widget examples" bar
        trainer = SentenceTransformerTrainer(
            model=model,
            args=args,
            train_dataset=pairs.to_dataset(),
            loss=loss,
            evaluator=evaluator if args.eval_strategy != "no" else None,
            callbacks=callbacks,
        )
    from transformers.trainer_callback import PrinterCallback

    trainer.remove_callback(PrinterCallback)  # raw log dicts on the console; MetricsCallback logs a line
    with stop.catching(), no_loading_bars():  # no "Writing model shards" bar at each checkpoint
        trainer.train(resume_from_checkpoint=str(resume_from) if resume_from else None)
    outcome = TrainingOutcome(global_step=trainer.state.global_step, stopped_by=stop.signum)
    key = f"eval_{main_metric}"
    for entry in reversed(trainer.state.log_history):
        if key in entry:
            outcome.validation_step, outcome.validation_score = int(entry["step"]), float(entry[key])
            break
    return outcome
