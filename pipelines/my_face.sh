#!/usr/bin/env bash
# From a published FFHQ network to your own face: import the network, project each photo into its latent
# space (each face aligned as FFHQ's were), give every projection the fine styles (colours, micro-detail) of
# six generated faces while it keeps its own coarse and middle ones, and put it all on one page:
#   bash pipelines/my_face.sh PHOTO...
# Settings from the environment: NETWORK, what `sgan import` takes (a catalogue name, a URL or a .pkl file;
# default ffhq-1024); RUN, the run directory (default runs/my_face); STEPS, projector steps per photo (default
# 1000, NVIDIA's); LANDMARKS, how faces are found (default dlib: FFHQ's own detector, offline; or fan).
# The photos are copied into RUN/photos/. Run again, every step keeps what it has finished.
set -euo pipefail
network="${NETWORK:-ffhq-1024}"
run="${RUN:-runs/my_face}"
steps="${STEPS:-1000}"
landmarks="${LANDMARKS:-dlib}"

if [ "$#" -eq 0 ]; then
    echo "my_face.sh: name at least one photo of a face: bash pipelines/my_face.sh PHOTO..." >&2
    exit 2
fi
for photo in "$@"; do
    if [ ! -f "$photo" ]; then
        echo "my_face.sh: there is no photo at $photo." >&2
        exit 2
    fi
done

# 1. The published network as the run's first checkpoint (a no-op once imported).
sgan import "$network" -r "$run"
# 2. The photos, one numbered folder each so that two of the same name stay apart, projected in one call:
#    RUN/project/latents.npz gets one row per photo, in the order given.
rm -rf "$run/photos"
i=0
for photo in "$@"; do
    i=$((i + 1))
    folder="$run/photos/$(printf %03d "$i")"
    mkdir -p "$folder"
    cp "$photo" "$folder/"
done
sgan project -r "$run" --target "$run/photos" --landmarks "$landmarks" --steps "$steps"
# 3. Style mixing: a row per photo, its coarse styles (and so its middle ones) with the fine styles of seeds 1-6.
sgan mix -r "$run" --coarse "$run/project/latents.npz" --fine 1-6
# 4. One page: each photo's aligned target beside its projection, with LPIPS and PSNR, and the mixing grid.
sgan report -r "$run"
echo "Done: open $run/report.html, or see $run/project/ (each projection beside its target, project.json" \
    "with their LPIPS and PSNR) and $run/mix/grid.png." >&2
