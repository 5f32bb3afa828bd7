"""TensorBoard logging during `sgan train`, as NVIDIA's trainers do it: RUN/train/tensorboard/ gets
every tick's scalars (the values of its line in train/log.jsonl), every metric computed during
training and every fakes grid, all indexed by the number of images shown (nimg = kimg * 1000).

It is optional (`pip install 'sgan[tensorboard]'`): without the tensorboard package, or on ranks
other than 0, `open_writer` returns a writer that does nothing. A resumed run appends a new event
file to the same folder.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from stylegan_cli.core import rundir
from stylegan_cli.core.console import err

OFF = "TensorBoard logging is off: pip install 'sgan[tensorboard]'"

# The group (TensorBoard's section) of each of log.jsonl's keys; the loss terms (loss_G, loss_D,
# and the regularisers r1, gp, pl) and anything else numeric go under Loss/.
_GROUPS = {"kimg": "Progress", "resolution": "Progress", "alpha": "Progress", "lr": "Progress", "batch": "Progress",
           "aug_p": "Progress", "ada_target": "Progress", "sec_per_kimg": "Timing", "img_per_sec": "Timing",
           "memory_gib": "Resources"}


def tensorboard_dir(run_dir: Path) -> Path:
    return rundir.train_dir(run_dir) / "tensorboard"


def scalar_tag(key: str) -> str:
    """The TensorBoard tag of one of log.jsonl's keys, e.g. Loss/loss_G, Progress/kimg, Timing/sec_per_kimg."""
    return f"{_GROUPS.get(key, 'Loss')}/{key}"


def metric_tag(name: str) -> str:
    return f"Metrics/{name}"


FAKES_TAG = "Fakes"


class _Off:
    """What training writes to when TensorBoard logging is off."""

    def tick(self, line: dict, nimg: int) -> None:
        pass

    def fakes(self, grid: np.ndarray, nimg: int) -> None:
        pass

    def metrics(self, results, nimg: int) -> None:
        pass

    def flush(self) -> None:
        pass

    def close(self) -> None:
        pass


class _Writer(_Off):
    def __init__(self, summary_writer):
        self.w = summary_writer

    def tick(self, line: dict, nimg: int) -> None:
        """The numeric values of one log.jsonl line (everything but its time stamp)."""
        for key, value in line.items():
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                self.w.add_scalar(scalar_tag(key), value, global_step=nimg)

    def fakes(self, grid: np.ndarray, nimg: int) -> None:
        """The fakes grid as saved to train/fakes-KKKKKKK.png: an (H, W, 3) uint8 array."""
        self.w.add_image(FAKES_TAG, grid, global_step=nimg, dataformats="HWC")

    def metrics(self, results, nimg: int) -> None:
        """metrics.evaluator.Result objects, one scalar each."""
        for r in results:
            self.w.add_scalar(metric_tag(r.metric), r.value, global_step=nimg)

    def flush(self) -> None:
        self.w.flush()

    def close(self) -> None:
        self.w.close()


def open_writer(run_dir: Path, main: bool) -> _Off:
    """A writer to RUN/train/tensorboard/ on the main rank when tensorboard is installed; otherwise one that
    does nothing (and, on the main rank, says so once on stderr)."""
    if not main:
        return _Off()
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        err.print(OFF, markup=False)
        return _Off()
    return _Writer(SummaryWriter(log_dir=str(tensorboard_dir(run_dir))))
