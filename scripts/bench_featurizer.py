#!/usr/bin/env python3
"""PyTorch side of the featurizer benchmark: torchvision resnet50 (eval, inference_mode),
the same images, PIL decode + torchvision's preset, the same thread count and batch size,
end to end (decode + resize + network + writing the vectors). Prints one line of JSON.
Exits 0 with a message when torch is missing: it is optional.

    python3 scripts/bench_featurizer.py IMAGE_DIR [--threads 2] [--batch-size 16]
"""
import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

try:
    import numpy as np
    import torch
    import torchvision
    from PIL import Image
    from torchvision import transforms
except ImportError as e:  # optional
    print(json.dumps({"skipped": f"PyTorch side skipped: {e} (pip install torch torchvision)"}))
    sys.exit(0)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("images")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--batch-size", type=int, default=16)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    model = torchvision.models.resnet50(weights=None)
    model.fc = torch.nn.Identity()
    model.eval()
    preset = transforms.Compose([
        transforms.Resize(256, interpolation=transforms.InterpolationMode.BILINEAR, antialias=True),
        transforms.CenterCrop(224),
        transforms.ToTensor(),
        transforms.Normalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225]),
    ])
    paths = sorted(Path(args.images).glob("*.jpg"))
    with torch.inference_mode():
        model(torch.zeros(2, 3, 224, 224))  # warm-up
        start = time.perf_counter()
        outputs = []
        for i in range(0, len(paths), args.batch_size):
            batch = torch.stack([preset(Image.open(p).convert("RGB")) for p in paths[i:i + args.batch_size]])
            outputs.append(model(batch).numpy())
        with tempfile.TemporaryDirectory() as d:
            np.save(Path(d) / "features.npy", np.concatenate(outputs))
        seconds = time.perf_counter() - start
    print(json.dumps({"images": len(paths), "seconds": seconds, "images_per_s": len(paths) / seconds,
                      "torch": torch.__version__, "threads": args.threads, "batch_size": args.batch_size}))


if __name__ == "__main__":
    main()
