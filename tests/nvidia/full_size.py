"""Writes full-size synthetic NVIDIA pickles (random weights, the published 1024x1024 layouts) for timing `sgan import`:

    python tests/nvidia/full_size.py OUT_DIR [RESOLUTION]

See BENCHMARKS.md for the figures. (Not a test: the files are 260-370 MB each.)"""

from __future__ import annotations

import sys
from pathlib import Path

import nvidia_files

WRITERS = {
    "karras2018iclr-synthetic.pkl": nvidia_files.write_pggan,
    "karras2019stylegan-synthetic.pkl": nvidia_files.write_stylegan,
    "stylegan2-synthetic-config-f.pkl": nvidia_files.write_stylegan2_tf,
    "stylegan2-ada-synthetic.pkl": nvidia_files.write_stylegan2_pt,
}

if __name__ == "__main__":
    out, resolution = Path(sys.argv[1]), int(sys.argv[2]) if len(sys.argv) > 2 else 1024
    out.mkdir(parents=True, exist_ok=True)
    for name, write in WRITERS.items():
        write(out / name, resolution)
        print(out / name)
