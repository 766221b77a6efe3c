"""Lightning callbacks of the expert runs: the outputs they write, interrupt checkpoints, exact resume.

:class:`MyTFTModule <models.tft_module.MyTFTModule>` computes and returns; it knows no paths. What a run writes
comes from here, into the folder of the trainer's logger:

* :class:`ValidationOutputs`: after each validation pass (not the sanity check) ``val_calibration.csv``, the
  epoch's ``eval_report_*.csv`` (one file per run, rewritten), the reliability PNG and TensorBoard figure; at the
  end of fitting ``tft_gating.csv`` (the variable-selection weights);
* :class:`PredictionWriter` (Lightning's ``BasePredictionWriter``): ``predictions/predictions_*.parquet`` and its
  eval report, labelled with the writer's ``split``;
* :class:`InterruptCheckpoint` and :class:`ExactResume`: a stopped run resumes where it stopped, bit for bit;
* :class:`BestAndLastCheckpoint`: the best checkpoints by the monitor, and ``last.ckpt`` after every epoch;
* :class:`AveragedWeights`: an exponential moving average of the weights for validation, checkpoints and prediction.
"""

from __future__ import annotations

import logging
from pathlib import Path

import lightning as L
import numpy as np
import torch
from lightning.pytorch.callbacks import BasePredictionWriter, EMAWeightAveraging, ModelCheckpoint

from models.outputs import (
    append_calibration_csv,
    reliability_figure,
    save_figure,
    utc_stamp,
    write_predictions,
)
from utils.eval_report import eval_report, write_eval_report
from utils.interrupts import deferred_sigint
from utils.io import write_csv
from utils.memory import release_freed_memory

logger = logging.getLogger(__name__)


def _log_dir(trainer: L.Trainer) -> Path:
    """The run's output folder: the trainer's logger's (``.../tft/version_N``)."""
    logger_ = trainer.logger
    if logger_ is None or not logger_.log_dir:
        raise RuntimeError("output callbacks need a trainer with a logger (its log_dir receives the files)")
    return Path(logger_.log_dir)


def _tb_writer(trainer: L.Trainer):
    experiment = getattr(trainer.logger, "experiment", None)
    return experiment if hasattr(experiment, "add_scalar") else None


class ReleaseFreedMemory(L.Callback):
    """Gives freed memory back to the OS every ``every`` batches of training, validation and prediction, and at the
    end of a validation or prediction pass (list it before the callbacks that write that pass's outputs).

    A step's temporaries are freed, but glibc keeps the pages (the small arrays a loop keeps, such as prediction
    outputs, pin the heap between them), so resident memory creeps up by a few hundred MB over a loop on a large
    leaf; a trim every few batches costs milliseconds (:func:`utils.memory.release_freed_memory`).
    """

    def __init__(self, every: int = 16) -> None:
        self.every = every

    def _maybe(self, batch_idx: int) -> None:
        if batch_idx % self.every == self.every - 1:
            release_freed_memory()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:  # noqa: D102
        self._maybe(batch_idx)

    def on_validation_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0) -> None:  # noqa: D102
        self._maybe(batch_idx)

    def on_predict_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0) -> None:  # noqa: D102
        self._maybe(batch_idx)

    # At the end of a loop too, before the writers that follow this callback gather the loop's outputs.
    def on_validation_epoch_end(self, trainer, pl_module) -> None:  # noqa: D102
        release_freed_memory()

    def on_predict_epoch_end(self, trainer, pl_module) -> None:  # noqa: D102
        release_freed_memory()


class ValidationOutputs(L.Callback):
    """Writes what each validation pass computed (``pl_module.latest_validation``) and the gating weights."""

    def __init__(self) -> None:
        self.stamp: str | None = None  # one report file per run, rewritten each epoch with the latest one

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """After the module's epoch end: its calibration is fitted and its report computed."""
        result = getattr(pl_module, "latest_validation", None)
        if trainer.sanity_checking or not trainer.is_global_zero or result is None:
            return
        with deferred_sigint():
            self._write(trainer, pl_module, result)

    def _write(self, trainer: L.Trainer, pl_module: L.LightningModule, result) -> None:
        log_dir, writer, step = _log_dir(trainer), _tb_writer(trainer), int(trainer.global_step)
        self.stamp = self.stamp or utc_stamp()
        m = pl_module.leaf.model
        append_calibration_csv(result.calibration, log_dir / "val_calibration.csv")
        write_eval_report(result.report.assign(epoch=result.epoch), log_dir, m.expert, m.period, self.stamp, writer,
                          step, tag="val_eval")
        if (result.frame["kind"] == "classification").any():
            fig = reliability_figure(result.frame, title=f"{m.expert} {m.period}/{m.modality} validation, "
                                                         f"epoch {result.epoch}")
            if writer is not None:
                writer.add_figure("val/reliability", fig, global_step=step, close=False)
            save_figure(fig, log_dir / "reliability" / f"reliability_epoch{result.epoch:03d}.png")

    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """``tft_gating.csv`` (inside the worker process under ddp_spawn)."""
        if trainer.is_global_zero and trainer.logger is not None and trainer.logger.log_dir:
            with deferred_sigint():
                write_csv(pl_module.importances(), _log_dir(trainer) / "tft_gating.csv")


class PredictionWriter(BasePredictionWriter):
    """Collects the decoded batches of a predict pass and writes the contract parquet and its eval report.

    ``split`` labels the rows (``val``, ``test``, ``all``, ``oof``); after the pass ``outputs`` holds the paths.
    """

    def __init__(self, split: str) -> None:
        super().__init__(write_interval="batch")
        self.split = split
        self.outputs: dict[str, str] = {}
        self._batches: list[dict[str, np.ndarray]] = []

    def on_predict_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """Start a fresh collection."""
        self._batches, self.outputs = [], {}

    def write_on_batch_end(self, trainer, pl_module, prediction, batch_indices, batch, batch_idx,
                           dataloader_idx) -> None:
        """Keep the batch's contract arrays (already on the CPU)."""
        flat = {k: v for k, v in prediction.items() if isinstance(v, torch.Tensor)}
        flat.update(prediction["meta"])
        self._batches.append({k: v.numpy() for k, v in flat.items()})

    def on_predict_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """Write ``predictions_{expert}_{period}_{timestamp}.parquet`` and its eval report into the log dir."""
        batches, self._batches = self._batches, []
        if not batches or not trainer.is_global_zero:
            return
        with deferred_sigint():
            self._write(trainer, pl_module, batches)

    def _write(self, trainer: L.Trainer, pl_module: L.LightningModule, batches: list[dict]) -> None:
        decoded = {k: np.concatenate([b[k] for b in batches]) for k in batches[0]}
        frame = pl_module.contract_frame(decoded, self.split)
        m, log_dir, stamp = pl_module.leaf.model, _log_dir(trainer), utc_stamp()
        path = write_predictions(frame, log_dir / "predictions", m.expert, m.period, stamp)
        report = eval_report(frame, no_skill=pl_module.no_skill).assign(split=self.split)
        report_path = write_eval_report(report, log_dir, m.expert, m.period, stamp, _tb_writer(trainer),
                                        int(trainer.global_step), tag=f"predict_{self.split}")
        self.outputs = {"predictions": str(path), "eval_report": str(report_path)}


class InterruptCheckpoint(L.Callback):
    """On SIGTERM or SIGINT, save ``last.ckpt`` at the current step so that ``train_resume.py`` continues there.

    Lightning stops the loops at the next batch boundary (``SIGTERMException``, ``KeyboardInterrupt``) and
    calls ``on_exception``; :func:`run` then records ``status: interrupted`` and exits 143 / 130.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.signal_name: str | None = None

    def on_exception(self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException) -> None:
        """Save the state of the interrupted step."""
        from lightning.pytorch.utilities.exceptions import SIGTERMException

        if isinstance(exception, SIGTERMException):
            self.signal_name = "SIGTERM"
        elif isinstance(exception, KeyboardInterrupt):
            self.signal_name = "SIGINT"
        else:
            return
        for cb in trainer.checkpoint_callbacks:  # this file is its `last`: a resume overwrites it, no last-v1
            same_dir = cb.dirpath and Path(cb.dirpath).resolve() == self.path.parent.resolve()
            if isinstance(cb, ModelCheckpoint) and same_dir:
                self.path = Path(cb.dirpath) / self.path.name
                cb.last_model_path = str(self.path)
        trainer.save_checkpoint(self.path)
        logger.warning("%s: saved %s at epoch %d, step %d", self.signal_name, self.path, trainer.current_epoch,
                       trainer.global_step)


def _rng_states() -> dict:
    """Generator states as tensors and plain numbers (what a ``weights_only`` checkpoint load accepts)."""
    import random

    version, internal, gauss = random.getstate()
    name, keys, pos, has_gauss, cached = np.random.get_state()
    return {"python": {"version": version, "state": torch.tensor(internal, dtype=torch.int64), "gauss": gauss},
            "numpy": {"name": name, "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                      "has_gauss": int(has_gauss), "cached": float(cached)},
            "torch": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else []}


def _set_rng_states(states: dict) -> None:
    import random

    py, nps = states["python"], states["numpy"]
    random.setstate((py["version"], tuple(int(v) for v in py["state"].tolist()), py["gauss"]))
    np.random.set_state((nps["name"], nps["keys"].numpy().astype(np.uint32), nps["pos"], nps["has_gauss"],
                         nps["cached"]))
    torch.set_rng_state(states["torch"])
    if states.get("cuda") and torch.cuda.is_available() and len(states["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(states["cuda"])


class ExactResume(L.Callback):
    """Checkpoints carry the random-number states and the sampler's position, so a resume is exact.

    Saved with every checkpoint: Python, NumPy and torch (CPU, CUDA) generator states, and how many batches
    of the current epoch were trained (0 at the end of an epoch). On resume the generators are restored and
    the train sampler skips those batches once (the epoch's order is a function of seed and epoch), so
    "2 epochs" and "1 epoch, stop, resume" see the same batches and the same dropout masks.
    """

    def __init__(self, sampler: object) -> None:
        self.sampler = sampler

    def on_save_checkpoint(self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict) -> None:
        """Store the states (the same call serves epoch-end and interrupt checkpoints)."""
        # batches whose optimizer step ran (``completed`` lags by one inside on_train_batch_end)
        done = int(trainer.fit_loop.epoch_loop.batch_progress.current.processed)
        finished = done >= trainer.num_training_batches
        checkpoint["resume_state"] = {"rng": _rng_states(), "batches_done": 0 if finished else done}

    def on_load_checkpoint(self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict) -> None:
        """Restore them (checkpoints from before this existed resume at their epoch boundary, as before)."""
        state = checkpoint.get("resume_state")
        if state is None:
            logger.warning("checkpoint without random-number states: the resume is not bit-exact")
            return
        _set_rng_states(state["rng"])
        self.sampler.skip = int(state["batches_done"])


class BestAndLastCheckpoint(ModelCheckpoint):
    """Lightning's ``ModelCheckpoint``, with ``last.ckpt`` written after every epoch's validation.

    From Lightning 2.6 ``save_last=True`` writes ``last.ckpt`` only when a top-k checkpoint is saved at the same
    step, so after an epoch that does not improve the monitor ``last.ckpt`` stays the best epoch's: a resume would
    silently go back to it, repeat epochs and see other batches. Here ``last.ckpt`` is always the latest epoch (the
    behaviour of Lightning <= 2.5, where the parent already saved it and this adds nothing).
    """

    @property
    def state_key(self) -> str:
        """The parent's key: checkpoints written before this class resume with their best-model state, and
        :func:`models.checkpoints.checkpoint_outcome` reads both."""
        return super().state_key.replace(type(self).__qualname__, "ModelCheckpoint", 1)

    def _save_last_anyway(self, trainer: L.Trainer, at_train_epoch_end: bool) -> None:
        # the parent saved at this step (top-k, or last with it) -> nothing to add; this also skips sanity checks
        if (not self.save_last or self._should_skip_saving_checkpoint(trainer)
                or self._should_save_on_train_epoch_end(trainer) != at_train_epoch_end):
            return
        self._save_last_checkpoint(trainer, self._monitor_candidates(trainer))

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """Top-k as the parent, then ``last.ckpt`` if the parent did not write it."""
        super().on_train_epoch_end(trainer, pl_module)
        self._save_last_anyway(trainer, at_train_epoch_end=True)

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """Top-k as the parent, then ``last.ckpt`` if the parent did not write it."""
        super().on_validation_end(trainer, pl_module)
        self._save_last_anyway(trainer, at_train_epoch_end=False)


class AveragedWeights(EMAWeightAveraging):
    """An exponential moving average of the parameters (``training.ema_decay``), updated after every optimizer step.

    Validation runs with the averaged parameters, and checkpoints carry them as their ``state_dict`` (the raw ones
    beside them, for a resume), so the monitor, the best checkpoint and every prediction are the averaged
    network's. Buffers are not averaged: they are the module's own state, above all the calibration that
    ``on_validation_epoch_end`` fits on the averaged network's validation logits; Lightning's callback would
    average them with the parameters and put a stale calibration into the checkpoint.
    """

    def __init__(self, decay: float) -> None:
        super().__init__(decay=decay, use_buffers=False)
        self._swapped = False  # the module holds the averaged parameters (inside a validation pass)

    def _swap_models(self, pl_module: L.LightningModule) -> None:
        for average, current in zip(self._average_model.module.parameters(), pl_module.parameters(), strict=True):
            tmp = average.data.clone()
            average.data.copy_(current.data)
            current.data.copy_(tmp)
        self._swapped = not self._swapped

    def _copy_average_to_current(self, pl_module: L.LightningModule) -> None:
        for average, current in zip(self._average_model.module.parameters(), pl_module.parameters(), strict=True):
            current.data.copy_(average.data)

    def on_save_checkpoint(self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict) -> None:
        """The averaged parameters with the module's own buffers (its calibration) as the ``state_dict``.

        A checkpoint written inside a validation pass (a SIGTERM or Ctrl-C there) finds the two sets of parameters
        swapped: the module's are the averaged ones, the average model holds the raw ones.
        """
        if self._average_model is None or not self._swapped:
            super().on_save_checkpoint(trainer, pl_module, checkpoint)
        else:
            average = self._average_model.state_dict()
            checkpoint["current_model_state"] = {k[7:]: v for k, v in average.items() if k.startswith("module.")}
            checkpoint["averaging_state"] = {k: v for k, v in average.items() if not k.startswith("module.")}
        current = checkpoint.get("current_model_state")
        if current is not None:  # the module's buffers, in both
            buffers = {name for name, _ in pl_module.named_buffers()}
            own = {k: v for k, v in pl_module.state_dict().items() if k in buffers}
            checkpoint["state_dict"].update(own)
            current.update(own)
