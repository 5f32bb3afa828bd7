"""PNGs written on threads while the next batch renders (`synthesis/images.PngWriter`): the same files as one
at a time, failures reported, and nothing lost when the block is left early."""

from __future__ import annotations

import numpy as np
import pytest

from stylegan_cli.core.errors import SganError
from stylegan_cli.synthesis.images import PngWriter, png_bytes


def images(n: int) -> list[np.ndarray]:
    return [np.random.RandomState(i).randint(0, 256, (24, 24, 3)).astype(np.uint8) for i in range(n)]


def test_parallel_writes_are_the_files_one_writer_makes(tmp_path):
    with PngWriter(workers=3) as pngs:
        written = [pngs.write(tmp_path / f"{i:03d}.png", img) for i, img in enumerate(images(40))]
    assert written == [tmp_path / f"{i:03d}.png" for i in range(40)]
    assert [p.read_bytes() for p in written] == [png_bytes(img) for img in images(40)]
    assert sorted(p.name for p in tmp_path.iterdir()) == [p.name for p in written]  # no temporary files left


def test_a_failed_write_is_one_sentence_when_the_block_ends(tmp_path):
    (tmp_path / "taken").write_text("a file where a folder should be")
    with pytest.raises(SganError, match="taken"):
        with PngWriter(workers=2) as pngs:
            pngs.write(tmp_path / "ok.png", images(1)[0])
            pngs.write(tmp_path / "taken" / "x.png", images(1)[0])
    assert (tmp_path / "ok.png").read_bytes() == png_bytes(images(1)[0])


def test_leaving_the_block_early_finishes_the_started_writes_and_keeps_the_reason(tmp_path):
    (tmp_path / "taken").write_text("a file where a folder should be")
    with pytest.raises(KeyboardInterrupt):
        with PngWriter(workers=2) as pngs:
            for i, img in enumerate(images(6)):
                pngs.write(tmp_path / f"{i}.png", img)
            pngs.write(tmp_path / "taken" / "x.png", img)  # fails, but the interruption is what is reported
            raise KeyboardInterrupt
    assert sorted(p.name for p in tmp_path.iterdir()) == [*(f"{i}.png" for i in range(6)), "taken"]
