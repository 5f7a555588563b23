#!/usr/bin/env python3
"""Makes tests/reference/pytorch-lbfgs.json: the loss after each iteration of PyTorch's own
torch.optim.LBFGS (history 50, step 1, no line search, tolerances off) on the reference pair
(tests/reference/content-128x72.png, style-128x100.png), with the paper's losses as
benches/pytorch_evaluation.py computes them (content at conv4_2, Gram matrices at
conv1_1..conv5_1 used as they are, average pooling, alpha = 512^2/(W*H), beta = 1e4, w_l = 0.2),
starting from the content image, in float64.

tests/engine.rs runs stylize-video's L-BFGS on the same problem and compares the two
trajectories. Needs only torch: `python3 scripts/pytorch-lbfgs-reference.py > tests/reference/pytorch-lbfgs.json`
"""

import json
import os
import struct
import sys
import warnings
import zlib

warnings.filterwarnings("ignore", message="Failed to initialize NumPy")

import torch  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.join(HERE, "..")
sys.path.insert(0, os.path.join(ROOT, "benches"))
from pytorch_evaluation import Gatys, load_network  # noqa: E402

ITERATIONS = 100
HISTORY = 50
CAFFE_MEAN_BGR = [103.939, 116.779, 123.68]


def read_png_rgb8(path):
    """An 8-bit RGB, non-interlaced PNG as rows of bytes (all the reference needs)."""
    with open(path, "rb") as f:
        data = f.read()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", path
    pos, idat, width, height = 8, b"", 0, 0
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind = data[pos + 4 : pos + 8]
        body = data[pos + 8 : pos + 8 + length]
        if kind == b"IHDR":
            width, height, depth, colour, _, _, interlace = struct.unpack(">IIBBBBB", body)
            assert (depth, colour, interlace) == (8, 2, 0), f"{path}: not 8-bit RGB"
        elif kind == b"IDAT":
            idat += body
        pos += 12 + length
    raw = zlib.decompress(idat)
    stride, bpp = width * 3, 3
    rows, prev = [], bytearray(stride)
    for y in range(height):
        f = raw[y * (stride + 1)]
        line = bytearray(raw[y * (stride + 1) + 1 : (y + 1) * (stride + 1)])
        for i in range(stride):
            a = line[i - bpp] if i >= bpp else 0
            b = prev[i]
            c = prev[i - bpp] if i >= bpp else 0
            if f == 1:
                line[i] = (line[i] + a) & 255
            elif f == 2:
                line[i] = (line[i] + b) & 255
            elif f == 3:
                line[i] = (line[i] + (a + b) // 2) & 255
            elif f == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                pred = a if pa <= pb and pa <= pc else (b if pb <= pc else c)
                line[i] = (line[i] + pred) & 255
        rows.append(bytes(line))
        prev = line
    return width, height, rows


def to_network(path):
    width, height, rows = read_png_rgb8(path)
    t = torch.tensor([list(r) for r in rows], dtype=torch.float64).view(height, width, 3)
    bgr = t.permute(2, 0, 1).flip(0)  # 0..255, BGR
    mean = torch.tensor(CAFFE_MEAN_BGR, dtype=torch.float64).view(3, 1, 1)
    return (bgr - mean).unsqueeze(0).contiguous()


def main():
    dtype = torch.float32 if "--float32" in sys.argv else torch.float64
    torch.set_num_threads(max(1, os.cpu_count() or 1))
    reference = os.path.join(ROOT, "tests", "reference")
    content = to_network(os.path.join(reference, "content-128x72.png")).to(dtype)
    style = to_network(os.path.join(reference, "style-128x100.png")).to(dtype)
    convs = [(n, w.to(dtype), b.to(dtype)) for n, w, b in
             load_network(os.path.join(ROOT, "weights", "vgg19-caffe-q8.safetensors"), torch.device("cpu"))]
    loss = Gatys(convs, content, style)
    x = content.clone().requires_grad_(True)
    losses = []

    def closure():
        optimizer.zero_grad()
        total = loss.terms(x)[0]
        total.backward()
        losses.append(total.item())
        return total

    # PyTorch evaluates max_iter times: the start and after each iteration but the last.
    optimizer = torch.optim.LBFGS([x], lr=1, max_iter=ITERATIONS + 1, max_eval=10 * ITERATIONS,
                                  history_size=HISTORY, tolerance_grad=-1, tolerance_change=-1,
                                  line_search_fn=None)
    optimizer.step(closure)
    json.dump({
        "description": "total loss after each iteration (element 0: the start) of torch.optim.LBFGS "
                       f"(history {HISTORY}, lr 1, no line search, tolerances off) on the reference pair, "
                       f"{dtype}, Gram matrices as they are (stylize-video's --gram-scale paper), "
                       "alpha = 512^2/(W*H) (content weight 1), beta = 1e4, w_l = 0.2, average pooling, "
                       "from the content image; made by scripts/pytorch-lbfgs-reference.py",
        "torch": torch.__version__,
        "losses": losses,
    }, sys.stdout, indent=1)
    print()


if __name__ == "__main__":
    main()
