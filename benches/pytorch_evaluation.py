#!/usr/bin/env python3
"""The same loss evaluation as stylize-video's (forward to conv5_1 and backward to the image:
content at conv4_2, Gram matrices at conv1_1..conv5_1, average pooling), in plain PyTorch on the
same weights, timed the same way. benches/evaluation.rs runs it for a side-by-side ratio.

Prints one JSON object per line: {"impl": "pytorch", "device": ..., "size": ..., "ms": ...}.
Needs only torch (the virtualenv that provides libtorch has it)."""

import argparse
import contextlib
import json
import os
import struct
import sys
import time
import warnings

warnings.filterwarnings("ignore", message="Failed to initialize NumPy")

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

LAYERS = [(b, c) for b, n in enumerate([2, 2, 4, 4, 4], 1) for c in range(1, n + 1)]
POOL_AFTER = {"conv1_2", "conv2_2", "conv3_4", "conv4_4"}
STYLE = ["conv1_1", "conv2_1", "conv3_1", "conv4_1", "conv5_1"]
CONTENT = "conv4_2"
HISTORY = 50


def read_safetensors(path):
    with open(path, "rb") as f:
        data = f.read()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + n])
    body = memoryview(data)[8 + n :]
    kinds = {"U8": torch.uint8, "F32": torch.float32}
    out = {}
    for name, meta in header.items():
        if name == "__metadata__":
            continue
        a, b = meta["data_offsets"]
        t = torch.frombuffer(bytearray(body[a:b]), dtype=kinds[meta["dtype"]])
        out[name] = t.reshape(meta["shape"])
    return out


def load_network(path, device):
    w = read_safetensors(path)
    convs = []
    for b, c in LAYERS:
        key = f"block{b}_conv{c}"
        weight = w[key + ".weight_table"][w[key + ".weight_q"].long()]
        convs.append((f"conv{b}_{c}", weight.to(device), w[key + ".bias"].to(device)))
    return convs


def features(convs, x, wanted):
    out = {}
    deepest = max(i for i, (n, _, _) in enumerate(convs) if n in wanted)
    for i, (name, weight, bias) in enumerate(convs[: deepest + 1]):
        x = F.relu(F.conv2d(x, weight, bias, padding=1))
        if name in wanted:
            out[name] = x
        if name in POOL_AFTER and i < deepest:
            x = F.avg_pool2d(x, 2, 2)
    return out


def gram(f):
    n = f.shape[1]
    f = f.reshape(n, -1)
    return f @ f.t()


class Gatys:
    """The paper's loss for one content image and one painting: content at conv4_2, Gram matrices
    (as they are) at conv1_1..conv5_1 with w_l = 0.2, alpha = 512^2/(W*H) (stylize-video's content
    weight 1), beta = 1e4. Features computed in a lower precision (under `autocast`) are cast to
    float32 before the losses, as stylize-video does."""

    def __init__(self, convs, content, style, autocast=None):
        self.convs = convs
        self.autocast = autocast or contextlib.nullcontext()
        self.wanted = set(STYLE) | {CONTENT}
        with torch.no_grad():
            self.p = features(convs, content, self.wanted)[CONTENT]
            s = features(convs, style, self.wanted)
            self.targets = {l: gram(s[l]) for l in STYLE}
        self.alpha = 512 * 512 / (content.shape[2] * content.shape[3])
        self.beta = 1e4

    def terms(self, x):
        """(total, content, [E_l]) at x."""
        with self.autocast:
            f = features(self.convs, x, self.wanted)
        f = {k: v if v.dtype == torch.float64 else v.float() for k, v in f.items()}
        content = 0.5 * ((f[CONTENT] - self.p) ** 2).sum()
        style = [(((gram(f[l]) - self.targets[l]) / (2 * f[l].shape[1] * f[l].shape[2] * f[l].shape[3])) ** 2).sum()
                 for l in STYLE]
        return self.alpha * content + self.beta * 0.2 * sum(style), content, style


def bench(convs, size, device, repeats, warmup, precision, layout, lbfgs=0):
    width, height = size
    torch.manual_seed(0)
    content = (torch.rand(1, 3, height, width) * 255 - 120).to(device)
    style = (torch.rand(1, 3, height, width) * 255 - 120).to(device)
    if layout == "channels-last":
        content = content.contiguous(memory_format=torch.channels_last)
        style = style.contiguous(memory_format=torch.channels_last)
    # fp32: strict float32; tf32: TF32 convolutions and matmuls; bf16: autocast to bfloat16,
    # PyTorch's best mode in shared/docs/anchors.md.
    torch.backends.cudnn.allow_tf32 = precision == "tf32"
    torch.backends.cuda.matmul.allow_tf32 = precision == "tf32"
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16")
    loss = Gatys(convs, content, style, autocast)

    def evaluate(x):
        x = x.detach().requires_grad_(True)
        total, content_loss, terms = loss.terms(x)
        (g,) = torch.autograd.grad(total, x)
        # Read the figures back, as the Rust side does every evaluation.
        torch.stack([total.detach(), content_loss.detach(), *[t.detach() for t in terms], g.sum()]).tolist()
        return g

    x = content.clone()
    for _ in range(warmup):
        evaluate(x)
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        evaluate(x)
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append((time.perf_counter() - t) * 1e3)
    times.sort()
    evaluation = times[len(times) // 2]
    if lbfgs == 0:
        return evaluation, None

    # torch.optim.LBFGS as the anchors used it: history 50, step 1, no line search, no early
    # stop. 50 iterations fill its memory, the next `lbfgs` are timed (one step() call each;
    # the memory persists between calls).
    # torch.optim.LBFGS views each gradient flat, which a channels-last gradient refuses: the
    # image stays contiguous, and the channels-last weights still make cuDNN run channels-last.
    image = content.clone(memory_format=torch.contiguous_format).requires_grad_(True)
    optimizer = torch.optim.LBFGS([image], lr=1, max_iter=HISTORY, max_eval=10 * HISTORY,
                                  history_size=HISTORY, tolerance_grad=-1, tolerance_change=-1)

    def closure():
        optimizer.zero_grad()
        total = loss.terms(image)[0]
        total.backward()
        return total

    optimizer.step(closure)
    for group in optimizer.param_groups:
        group["max_iter"], group["max_eval"] = lbfgs, 10 * lbfgs
    if device.type == "cuda":
        torch.cuda.synchronize()
    state = optimizer.state[image]
    before = state["n_iter"]
    t = time.perf_counter()
    optimizer.step(closure)
    if device.type == "cuda":
        torch.cuda.synchronize()
    seconds = time.perf_counter() - t
    # Per iteration run: torch.optim.LBFGS stops early where a direction does not descend
    # (float32 can diverge), which dividing by the count asked for would hide.
    run = state["n_iter"] - before
    if run < lbfgs:
        print("pytorch_evaluation: torch.optim.LBFGS ran %d of %d iterations at %dx%d %s %s"
              % (run, lbfgs, width, height, precision, layout), file=sys.stderr)
    return evaluation, (seconds * 1e3 / run if run > 0 else None)


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    ap = argparse.ArgumentParser()
    ap.add_argument("--weights", default=os.path.join(here, "..", "weights", "vgg19-caffe-q8.safetensors"))
    ap.add_argument("--sizes", default="256,512")
    ap.add_argument("--precisions", default="fp32,bf16")
    ap.add_argument("--layouts", default="contiguous")
    ap.add_argument("--devices", default="cpu,cuda")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--lbfgs", type=int, default=0, help="also time this many L-BFGS iterations")
    args = ap.parse_args()
    for name in args.devices.split(","):
        if name == "cuda" and not torch.cuda.is_available():
            continue
        device = torch.device(name)
        if name == "cuda":
            torch.backends.cudnn.benchmark = True
        convs = load_network(args.weights, device)
        for text in args.sizes.split(","):
            w, _, h = text.partition("x")
            size = (int(w), int(h or w))
            for precision in args.precisions.split(","):
                for layout in args.layouts.split(","):
                    layer_convs = convs
                    if layout == "channels-last":
                        layer_convs = [(n, wt.contiguous(memory_format=torch.channels_last), b) for n, wt, b in convs]
                    ms, iteration_ms = bench(layer_convs, size, device, args.repeats, args.warmup, precision,
                                             layout, args.lbfgs)
                    print(json.dumps({"impl": "pytorch", "device": name, "width": size[0], "height": size[1],
                                      "precision": precision, "layout": layout, "ms": round(ms, 3),
                                      "lbfgs_iteration_ms": iteration_ms and round(iteration_ms, 3),
                                      "threads": torch.get_num_threads(), "torch": torch.__version__}),
                          flush=True)
                    sys.stdout.flush()


if __name__ == "__main__":
    main()
