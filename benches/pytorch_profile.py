#!/usr/bin/env python3
"""Where the time of one loss evaluation goes: the evaluation of benches/pytorch_evaluation.py
(the same network, losses and kernels as stylize-video's: both call libtorch's cuDNN
convolutions) under torch.profiler, its device time summed by kind of work.

Prints one JSON object: the total device time per evaluation, the share of each kind
(convolution forward, convolution backward to the input, ReLU and its backward, pooling, Gram
matrices and other matrix products, elementwise and reductions, copies and casts) and the ten
most expensive kernels. Runs on the CPU too (CPU operator times instead of kernels).

`python3 benches/pytorch_profile.py [--size 1280x720] [--precision bf16] [--layout channels-last] [--repeats 10]`
"""

import argparse
import json
import os
import sys
import warnings

warnings.filterwarnings("ignore", message="Failed to initialize NumPy")

import torch  # noqa: E402
from torch.profiler import ProfilerActivity, profile  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from pytorch_evaluation import Gatys, load_network  # noqa: E402

# Kernel or operator names to kinds of work, first match wins (lower case).
KINDS = [
    ("convolution backward (to the input)", ["dgrad", "convolution_backward", "conv_backward", "bwd_data"]),
    ("convolution forward", ["fprop", "conv2d", "convolution", "implicit_gemm", "cudnn", "winograd", "xmma_fprop", "sm90_xmma"]),
    ("relu and its backward", ["relu", "threshold"]),
    ("pooling", ["pool"]),
    ("gram matrices and matrix products", ["gemm", "mm", "matmul", "addmm", "cutlass"]),
    ("copies and casts", ["copy", "cast", "to_copy", "contiguous", "memcpy", "memset", "fill"]),
    ("elementwise and reductions", ["elementwise", "reduce", "sum", "mul", "add", "sub", "pow", "div", "vectorized"]),
]


def kind_of(name):
    lower = name.lower()
    for kind, keys in KINDS:
        if any(k in lower for k in keys):
            return kind
    return "other"


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    ap = argparse.ArgumentParser()
    ap.add_argument("--weights", default=os.path.join(here, "..", "weights", "vgg19-caffe-q8.safetensors"))
    ap.add_argument("--size", default="1280x720")
    ap.add_argument("--precision", default="bf16", choices=["fp32", "tf32", "bf16"])
    ap.add_argument("--layout", default="channels-last", choices=["contiguous", "channels-last"])
    ap.add_argument("--repeats", type=int, default=10)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = ap.parse_args()
    device = torch.device(args.device)
    cuda = device.type == "cuda"
    if cuda:
        torch.backends.cudnn.benchmark = True
    torch.backends.cudnn.allow_tf32 = args.precision == "tf32"
    torch.backends.cuda.matmul.allow_tf32 = args.precision == "tf32"
    width, _, height = args.size.partition("x")
    width, height = int(width), int(height or width)
    memory_format = torch.channels_last if args.layout == "channels-last" else torch.contiguous_format
    convs = [(n, w.contiguous(memory_format=memory_format), b) for n, w, b in load_network(args.weights, device)]
    torch.manual_seed(0)
    content = ((torch.rand(1, 3, height, width) * 255 - 120).to(device)).contiguous(memory_format=memory_format)
    style = ((torch.rand(1, 3, height, width) * 255 - 120).to(device)).contiguous(memory_format=memory_format)
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=args.precision == "bf16")
    loss = Gatys(convs, content, style, autocast)

    def evaluate():
        x = content.detach().requires_grad_(True)
        (g,) = torch.autograd.grad(loss.terms(x)[0], x)
        return g

    for _ in range(3):
        evaluate()
    if cuda:
        torch.cuda.synchronize()
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])
    with profile(activities=activities, acc_events=True) as prof:
        for _ in range(args.repeats):
            evaluate()
        if cuda:
            torch.cuda.synchronize()

    rows = []
    for e in prof.key_averages():
        if cuda:
            # Kernels: events with device time and no CPU-side children (the leaves).
            t = getattr(e, "self_device_time_total", None)
            if t is None:
                t = getattr(e, "self_cuda_time_total", 0)
            on_device = str(getattr(e, "device_type", "")).endswith("CUDA")
            if t <= 0 or not on_device:
                continue
        else:
            t = e.self_cpu_time_total
            if t <= 0 or not e.key.startswith("aten::"):
                continue
        rows.append((e.key, t / args.repeats / 1e3, e.count // args.repeats))
    total = sum(ms for _, ms, _ in rows)
    kinds = {}
    for name, ms, _ in rows:
        kinds[kind_of(name)] = kinds.get(kind_of(name), 0.0) + ms
    rows.sort(key=lambda r: -r[1])
    print(json.dumps({
        "device": torch.cuda.get_device_name(0) if cuda else "cpu",
        "torch": torch.__version__,
        "size": [width, height], "precision": args.precision, "layout": args.layout,
        "measured": "kernel time" if cuda else "CPU operator self time",
        "ms_per_evaluation": round(total, 3),
        "by_kind": {k: {"ms": round(v, 3), "share": round(v / total, 3)} for k, v in sorted(kinds.items(), key=lambda kv: -kv[1])},
        "top": [{"name": n[:120], "ms": round(ms, 3), "calls": c} for n, ms, c in rows[:10]],
    }, indent=1))


if __name__ == "__main__":
    main()
