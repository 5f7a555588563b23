#!/usr/bin/env bash
# One run that measures everything issue 5 asks for, printing one JSON object at the end (and
# keeping the pieces in OUT): evaluation times per size, precision and layout against PyTorch on
# the same machine, and the time of a whole L-BFGS iteration against torch.optim.LBFGS; where the
# evaluation's time goes (PyTorch's profiler on the same kernels); the first FRAMES frames of Big
# Buck Bunny stylised at VIDEO_SIZE with warm starts, frames per second, and each checked warm
# frame's loss against a cold 300-iteration start; one 4K frame with the peak GPU memory;
# coarse-to-fine against a plain run; warm starts as they are and moved along the optical flow,
# in iterations to each frame's cold-300 loss.
#
# On the GPU machine (no Rust, no ffmpeg libraries): `make gpu-bundle` here puts a frames-only
# build of the binary and of the benchmark in .gpu/; run `scripts/gpu-bench.sh` there from the
# repository root with .gpu carried. It also runs on a CPU at small sizes, e.g.
#   SIZES=128x72 PRECISIONS=fp32 LAYOUTS=contiguous LBFGS=5 PROFILE_SIZE=128x72 FRAMES=3 \
#   VIDEO_SIZE=96 VIDEO_FLAGS=" " BIG_SIZE=256 FIRST=20 WARM=5 CHECK="1" C2F_SIZE=96 \
#   C2F_SCHEDULES=48:20 WS_FRAMES=3 WS_COLD=20 FAST_FRAMES=3 scripts/gpu-bench.sh /tmp/bench
#
# OUT (the first argument) holds every piece, stylised frames included. RESULTS (the second,
# optional) receives two files only, for a machine that returns few: summary.json (what is
# printed at the end) and pieces.tar.gz (every JSON and text piece, and the first and last
# stylised frames of stage 4). Through the `device` tool:
#   PYTHON=/opt/torch/.venv/bin/python3 STAGES="0 1" scripts/gpu-bench.sh /tmp/bench $OUT
# then STAGES="2 3 4 5", then STAGES="6 7" (each well inside a 10-minute call).
# A stage that fails is logged and the others still run; the summary reads what is there.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-gpu-bench-out}
RESULTS=${2:-}
PYTHON=${PYTHON:-python3}
# The bundle's build of NAME (`make gpu-bundle`; at .gpu/NAME, or the path given) where there
# is one, else this checkout's own.
built() {
  local bundled=${2:-.gpu/$1}
  if [ -x "$bundled" ]; then
    echo "$bundled"
  elif [ "$1" = stylize-video ]; then
    echo target/release/stylize-video
  else
    { ls -t target/release/deps/"$1"-* 2>/dev/null || true; } | { grep -v '\.d$' || true; } | head -1
  fi
}
BIN=${BIN:-$(built stylize-video)}
BENCH=${BENCH:-$(built evaluation)}
C2F=${C2F:-$(built coarse_to_fine)}
WS=${WS:-$(built warm_start)}
# The tests that need a GPU (tests/gpu.rs), beside the binary as cargo lays them out.
GPU_TESTS=${GPU_TESTS:-$(built gpu .gpu/deps/gpu)}
for program in "$BIN" "$BENCH" "$C2F" "$WS"; do
  if [ ! -x "$program" ]; then
    echo "gpu-bench: no build of '${program:-a benchmark}': run \`make gpu-bundle\` and carry .gpu" >&2
    exit 2
  fi
done
WS_FRAMES=${WS_FRAMES:-12}
WS_COLD=${WS_COLD:-300}
# Frames of bikes' fast motion checked in stage 7 (0: none).
FAST_FRAMES=${FAST_FRAMES:-12}
# Stages to run (all by default); to stay within a 10-minute call, e.g. STAGES="0 1", "2 3 4 5",
# then "6 7" into the same OUT: the summary reads what is there.
STAGES=" ${STAGES:-0 1 2 3 4 5 6 7} "
has() { [[ "$STAGES" == *" $1 "* ]]; }
C2F_SIZE=${C2F_SIZE:-1920}
C2F_SCHEDULES=${C2F_SCHEDULES:-960:100,960:300,480:100+960:100}
SIZES=${SIZES:-512x512,1280x720,1920x1080}
PRECISIONS=${PRECISIONS:-fp32,tf32,bf16}
LAYOUTS=${LAYOUTS:-contiguous,channels-last}
# 30 timed iterations after 50 that fill the memory: enough for a steady figure, and it keeps
# stage 1 (18 cases, both L-BFGS forms, PyTorch's too) well inside a 10-minute call.
LBFGS=${LBFGS:-30}
PROFILE_SIZE=${PROFILE_SIZE:-1280x720}
FRAMES=${FRAMES:-48}
VIDEO_SIZE=${VIDEO_SIZE:-1280}
VIDEO_FLAGS=${VIDEO_FLAGS:---precision bf16 --channels-last}
FIRST=${FIRST:-500}
WARM=${WARM:-100}
CHECK=${CHECK:-12 24 36 47}
BIG_SIZE=${BIG_SIZE:-3840}
STYLE=samples/styles/van-gogh-village-street-auvers.jpg
CLIP=samples/video/bigbuckbunny.mp4

mkdir -p "$OUT"
TORCH_LIB=$("$PYTHON" -c 'import torch, os; print(os.path.join(os.path.dirname(torch.__file__), "lib"))')
export LD_LIBRARY_PATH="$TORCH_LIB${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
export STYLIZE_VIDEO_WEIGHTS="$PWD/weights/vgg19-caffe-q8.safetensors"
log() { echo "gpu-bench: $*" >&2; }

# Peak GPU memory while a command runs (nvidia-smi sampling every 100 ms), in MiB; "null" on a CPU.
peak() {
  local file=$1 sampler="" rc=0; shift
  if command -v nvidia-smi >/dev/null 2>&1; then
    : > "$file.mem"  # there even if the command ends before the sampler starts
    nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits -lms 100 > "$file.mem" &
    sampler=$!
  fi
  "$@" || rc=$?
  if [ -n "$sampler" ]; then
    kill "$sampler" 2>/dev/null; wait "$sampler" 2>/dev/null || true
    sort -n "$file.mem" | tail -1 > "$file.peak"
  else
    echo null > "$file.peak"
  fi
  return $rc
}

# Writes OUT/summary.json from what is there, and copies it with the pieces to RESULTS: after
# every stage, so that a call cut off at its time limit still returns the stages it finished.
deliver() {
# This shell's own number (a redirection is expanded in the child): the periodic and the
# stage-end deliveries may overlap.
local tag=$BASHPID
"$PYTHON" - "$OUT" "$CHECK" > "$OUT/summary.json.$tag" <<'PY'
import json, os, sys
out, check = sys.argv[1], sys.argv[2].split()
def load(name):
    try:
        with open(os.path.join(out, name)) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None
def peak(name):
    try:
        return json.loads(open(os.path.join(out, name + ".peak")).read().strip() or "null")
    except (OSError, ValueError):
        return None
def lines(name):
    # The JSON lines of a benchmark's output, as far as it got.
    rows = []
    try:
        for l in open(os.path.join(out, name)):
            try:
                rows.append(json.loads(l)) if l.startswith("{") else None
            except ValueError:
                pass
    except OSError:
        return None
    return rows
evaluation = lines("evaluation.txt")
video = load("video.json")
frames = {f["index"]: f for f in (video or {}).get("frames", [])}
checks = []
for i in check:
    cold = load("cold-%s.json" % i)
    if cold and int(i) in frames:
        c, w = cold["frames"][0]["final"]["total"], frames[int(i)]["final"]["total"]
        checks.append({"frame": int(i), "warm_loss": w, "cold300_loss": c, "warm_over_cold": w / c,
                       "warm_iterations": frames[int(i)]["iterations"]})
big = load("big.json")
def gpu_tests():
    # Each test's verdict and the figures the tests print.
    try:
        text = open(os.path.join(out, "gpu-tests.txt")).read().splitlines()
    except OSError:
        return None
    keep = ("test ", "SKIPPED", "on the GPU", "iterations:", "MiB in use", "ran out of memory", "panicked")
    return [l for l in text if l.startswith(keep) or any(k in l for k in keep[2:])]
print(json.dumps({
    "gpu_tests": gpu_tests(),
    "evaluation": evaluation,
    "profile": load("profile.json"),
    "coarse_to_fine": lines("coarse-to-fine.txt"),
    "warm_start": lines("warm-start.txt"),
    "warm_start_fast_motion": lines("warm-start-fast.txt"),
    "video": video and {"settings": {k: video["settings"].get(k) for k in
                                     ("processing_width", "processing_height", "precision",
                                      "channels_last", "device", "first_frame_iterations",
                                      "warm_start")},
                        "totals": video["totals"], "peak_gpu_mib": peak("video"),
                        "memory_reported": video.get("memory")},
    "warm_vs_cold300": checks,
    "big_frame": big and {"size": [big["settings"]["processing_width"], big["settings"]["processing_height"]],
                          "seconds": big["frames"][0]["seconds"], "iterations": big["frames"][0]["iterations"],
                          "peak_gpu_mib": peak("big"), "memory_reported": big.get("memory")},
}, indent=1))
PY
mv "$OUT/summary.json.$tag" "$OUT/summary.json"
if [ -n "$RESULTS" ]; then
  mkdir -p "$RESULTS"
  cp "$OUT/summary.json" "$RESULTS/summary.json.$tag"
  mv "$RESULTS/summary.json.$tag" "$RESULTS/summary.json"
  (
    cd "$OUT"
    shopt -s nullglob
    pieces=(*.json *.txt *.peak)
    stylised=(video/*.jpg)
    if [ ${#stylised[@]} -gt 0 ]; then
      pieces+=("${stylised[0]}" "${stylised[-1]}")
    fi
    tar czf "$RESULTS/pieces.tar.gz.$tag" "${pieces[@]}"
    mv "$RESULTS/pieces.tar.gz.$tag" "$RESULTS/pieces.tar.gz"
  )
fi
}

# Also every minute, for a stage cut off in the middle (its benchmark prints as it goes).
( while sleep 60; do deliver 2>/dev/null || true; done ) &
DELIVERER=$!
trap 'pkill -P $DELIVERER 2>/dev/null; kill $DELIVERER 2>/dev/null || true' EXIT

# The device libtorch sees (not whether nvidia-smi is installed).
DEVICE=$("$PYTHON" -c 'import torch; print("cuda" if torch.cuda.is_available() else "cpu")' || echo cpu)
log "device: $DEVICE ($(nvidia-smi -L 2>/dev/null | head -1 || echo 'no NVIDIA GPU'))"
# Without the ffmpeg tool, frames are extracted with OpenCV: say now if it is missing, not in
# a later call.
if ! command -v ffmpeg >/dev/null 2>&1 && ! "$PYTHON" -c 'import cv2' 2>/dev/null; then
  log "neither ffmpeg nor OpenCV (cv2) for $PYTHON: stages 3, 4 and 7 will have no frames"
fi
# Extracts frames FIRST.. (from 0) of CLIP into DIR as 00001.png.. (COUNT at most); says how many.
extract() {
  local clip=$1 dir=$2 first=$3 count=$4
  mkdir -p "$dir"
  if command -v ffmpeg >/dev/null 2>&1; then
    ffmpeg -loglevel error -y -i "$clip" -vf "select=gte(n\,$first),setpts=N/FRAME_RATE/TB" \
      -frames:v "$count" -start_number 1 "$dir/%05d.png" || log "ffmpeg could not extract frames of $clip"
  else
    "$PYTHON" - "$clip" "$dir" "$first" "$count" <<'PY' || log "OpenCV could not extract frames of $clip"
import sys, cv2
clip, out, first, count = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
cap = cv2.VideoCapture(clip)
for i in range(first + count):
    ok, frame = cap.read()
    if not ok:
        break
    if i >= first:
        cv2.imwrite("%s/%05d.png" % (out, i - first + 1), frame)
PY
  fi
  local got
  got=$(find "$dir" -maxdepth 1 -name '*.png' | wc -l)
  [ "$got" -ge "$count" ] || log "only $got of the $count frames of $clip could be extracted"
}
if has 0; then
  log "0/7 the tests that need a GPU (tests/gpu.rs)"
  if [ -x "$GPU_TESTS" ]; then
    "$GPU_TESTS" --test-threads=1 --nocapture > "$OUT/gpu-tests.txt" 2>&1 \
      || log "a GPU test failed (see gpu-tests.txt)"
    grep -E '^test |SKIPPED|test result' "$OUT/gpu-tests.txt" >&2 || true
  else
    log "no build of tests/gpu.rs: run \`make gpu-bundle\`"
  fi
  deliver
fi

if has 1; then
  log "1/7 evaluation and L-BFGS iteration timings ($SIZES; $PRECISIONS; $LAYOUTS) with PyTorch in the same run"
  # This device only: on a GPU machine the CPU's cases at these sizes would take the whole call.
  "$BENCH" --devices "$DEVICE" --sizes "$SIZES" --precisions "$PRECISIONS" --layouts "$LAYOUTS" \
    --lbfgs "$LBFGS" --lbfgs-forms compact,two-loop \
    --python "$PYTHON" > "$OUT/evaluation.txt" || log "the evaluation benchmark failed (see above)"
  grep '^|' "$OUT/evaluation.txt" >&2 || true
  deliver
fi

if has 2; then
  log "2/7 where the time of one evaluation goes ($PROFILE_SIZE, bf16, channels-last)"
  "$PYTHON" benches/pytorch_profile.py --size "$PROFILE_SIZE" > "$OUT/profile.json" \
    || log "the profile failed (see above)"
  if command -v nsys >/dev/null 2>&1; then
    # stylize-video's own kernels, where Nsight Systems is installed.
    nsys profile --stats=true -o "$OUT/ours" --force-overwrite true "$BENCH" --devices "$DEVICE" \
      --sizes "$PROFILE_SIZE" --precisions bf16 --layouts channels-last --repeats 20 --no-pytorch > "$OUT/nsys.txt" 2>&1 \
      || log "nsys failed"
    rm -f "$OUT"/ours.nsys-rep "$OUT"/ours.sqlite
  fi
  deliver
fi

if has 3 || has 4 || has 7; then
  log "3/7 the first $FRAMES frames of Big Buck Bunny"
  rm -rf "$OUT/frames"
  extract "$CLIP" "$OUT/frames" 0 "$FRAMES"
fi

if has 4; then
  log "4/7 stylising them at $VIDEO_SIZE px ($VIDEO_FLAGS), warm starts"
  rm -rf "$OUT/video"
  # shellcheck disable=SC2086
  peak "$OUT/video" "$BIN" "$OUT/frames/%05d.png" --style "$STYLE" --size "$VIDEO_SIZE" --fps 25 \
    --first-frame-iterations "$FIRST" --iterations "$WARM" $VIDEO_FLAGS \
    -o "$OUT/video/%05d.jpg" --report "$OUT/video.json" --overwrite -q \
    || log "stylising the frames failed (see above)"
  for i in $CHECK; do
    # shellcheck disable=SC2086
    "$BIN" "$OUT/frames/%05d.png" --style "$STYLE" --size "$VIDEO_SIZE" --fps 25 --frames "$i:$((i + 1))" \
      --first-frame-iterations 300 $VIDEO_FLAGS -o "$OUT/cold-$i/%05d.jpg" \
      --report "$OUT/cold-$i.json" --overwrite -q || log "the cold start of frame $i failed (see above)"
  done
  deliver
fi

if has 5; then
  log "5/7 one ${BIG_SIZE} px frame"
  # shellcheck disable=SC2086
  peak "$OUT/big" "$BIN" samples/frames/bigbuckbunny-060.jpg --style "$STYLE" --size "$BIG_SIZE" \
    --iterations 20 $VIDEO_FLAGS -o "$OUT/big.jpg" --report "$OUT/big.json" --overwrite -q \
    || log "the ${BIG_SIZE} px frame failed (see above)"
  deliver
fi

if has 6; then
  log "6/7 coarse-to-fine against a plain 300-iteration run at $C2F_SIZE px ($C2F_SCHEDULES)"
  "$C2F" --device "$DEVICE" --size "$C2F_SIZE" --schedules "$C2F_SCHEDULES" > "$OUT/coarse-to-fine.txt" \
    || log "coarse-to-fine failed (see above)"
  deliver
fi

if has 7; then
  log "7/7 warm starts, as they are and moved along the optical flow: iterations to each frame's cold-$WS_COLD loss ($WS_FRAMES frames at $VIDEO_SIZE px)"
  "$WS" --device "$DEVICE" --input "$OUT/frames/%05d.png" --size "$VIDEO_SIZE" --frames "$WS_FRAMES" \
    --cold "$WS_COLD" --cap "$WS_COLD" > "$OUT/warm-start.txt" || log "warm starts failed (see above)"
  deliver
  if [ "$FAST_FRAMES" -gt 0 ]; then
    # Fast motion within a shot (bikes from frame 100): the command line's default warm start
    # (flow, WARM iterations) against each frame's cold-WS_COLD loss.
    log "7/7 fast motion: bikes frames 100-$((99 + FAST_FRAMES)), $WARM warm iterations against cold-$WS_COLD"
    rm -rf "$OUT/bikes"
    extract samples/video/bikes.mp4 "$OUT/bikes" 100 "$FAST_FRAMES"
    "$WS" --device "$DEVICE" --input "$OUT/bikes/%05d.png" --size "$VIDEO_SIZE" --frames "$FAST_FRAMES" \
      --cold "$WS_COLD" --cap "$WARM" --policy fixed --modes flow > "$OUT/warm-start-fast.txt" \
      || log "fast-motion warm starts failed (see above)"
  fi
  deliver
fi
deliver
cat "$OUT/summary.json"
[ -z "$RESULTS" ] || log "results: $RESULTS/summary.json and $RESULTS/pieces.tar.gz"
