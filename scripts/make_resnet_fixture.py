#!/usr/bin/env python3
"""Writes the reference fixtures that pin the Rust ResNet and preprocessing to torchvision.

Run from the repository root (needs torch, torchvision, safetensors, Pillow, matplotlib):

    pip install torch torchvision safetensors matplotlib
    python3 scripts/make_resnet_fixture.py

It writes, under crates/models/tests/fixtures/ (all small, committed):

- tiny_resnet.pth / tiny_resnet.safetensors: the state dict of a tiny ResNet built from
  torchvision's own `Bottleneck` and `ResNet._make_layer` (so the key names and block wiring are
  torchvision's), layers [2, 1, 1, 1], base planes 4 (output 128-d), with randomised BatchNorm
  statistics and affine parameters so that folding BN into the convolutions is really exercised.
  The `fc` head is kept in the file, as in a real torchvision checkpoint.
- tiny_resnet_legacy.pth: the same state dict in PyTorch's pre-1.6 (non-ZIP) format, the format
  of older checkpoints.
- tiny_resnet_io.safetensors: `input` [2, 3, 64, 64] and its `output` [2, 128] (pre-fc features),
  `hopper_pixels` (uint8 [224, 224, 3]: grace_hopper.jpg after torchvision's Resize(256) +
  CenterCrop(224) on the PIL image), `hopper_features` [1, 128] (the tiny net on the full
  torchvision preset) and `hopper_stats` (per-channel mean, then per-channel std, of the
  normalized tensor).
- resnet50_keys.txt: `key<TAB>shape` of torchvision's resnet50 state dict (no weights), so the
  Rust key list for the full-size network is checked against torchvision.
- grace_hopper.jpg: a real photograph (copied from matplotlib's sample data).
- progressive.jpg + progressive_pil.png: a small progressive JPEG and Pillow's decoding of it.
- cmyk.jpg + cmyk_pil.png: a small CMYK JPEG and Pillow's RGB conversion of it.
- exif_orient6.jpg + exif_orient6_upright.png: a JPEG stored sideways with EXIF orientation 6
  and Pillow's `exif_transpose` of it (the upright picture).
- bomb.png: a PNG header claiming 100000 x 100000 pixels (a decompression bomb in 70 bytes).

Everything is deterministic (fixed seeds), so rerunning it reproduces the same numbers up to
torch's CPU kernels.
"""

from __future__ import annotations

import os
import shutil
import struct
import zlib
from pathlib import Path

import matplotlib
import numpy as np
import torch
import torch.nn as nn
import torchvision
from PIL import Image, ImageOps
from safetensors.torch import save_file
from torchvision import transforms
from torchvision.models.resnet import Bottleneck, ResNet

OUT = Path(__file__).resolve().parent.parent / "crates" / "models" / "tests" / "fixtures"
LAYERS = [2, 1, 1, 1]
BASE_PLANES = 4
NUM_CLASSES = 10


class TinyResNet(ResNet):
    """torchvision's ResNet with `base` planes instead of 64 (same modules, same key names)."""

    def __init__(self, layers: list[int], base: int, num_classes: int) -> None:
        nn.Module.__init__(self)
        self._norm_layer = nn.BatchNorm2d
        self.inplanes = base
        self.dilation = 1
        self.groups = 1
        self.base_width = 64  # torchvision's width_per_group: 64 means "no widening"
        self.conv1 = nn.Conv2d(3, base, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(base)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.layer1 = self._make_layer(Bottleneck, base, layers[0])
        self.layer2 = self._make_layer(Bottleneck, base * 2, layers[1], stride=2)
        self.layer3 = self._make_layer(Bottleneck, base * 4, layers[2], stride=2)
        self.layer4 = self._make_layer(Bottleneck, base * 8, layers[3], stride=2)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(base * 8 * Bottleneck.expansion, num_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """torchvision's _forward_impl without the final `fc`: the pooled feature vector."""
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return torch.flatten(self.avgpool(x), 1)


def randomise(model: nn.Module, gen: torch.Generator) -> None:
    """Random weights with activations of order one, and non-trivial BatchNorm everywhere."""
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.Conv2d):
                fan_in = m.weight[0].numel()
                m.weight.copy_(torch.randn(m.weight.shape, generator=gen) * (2.0 / fan_in) ** 0.5)
            elif isinstance(m, nn.BatchNorm2d):
                n = m.num_features
                m.weight.copy_(0.5 + torch.rand(n, generator=gen))
                m.bias.copy_(0.2 * torch.randn(n, generator=gen))
                m.running_mean.copy_(0.3 * torch.randn(n, generator=gen))
                m.running_var.copy_(0.5 + torch.rand(n, generator=gen))
                m.num_batches_tracked.fill_(7)
            elif isinstance(m, nn.Linear):
                m.weight.copy_(0.1 * torch.randn(m.weight.shape, generator=gen))
                m.bias.copy_(0.1 * torch.randn(m.bias.shape, generator=gen))


def check_naming_matches_torchvision() -> None:
    """The tiny class at full size must have exactly resnet50's keys and shapes."""
    full = TinyResNet([3, 4, 6, 3], 64, 1000).state_dict()
    ref = torchvision.models.resnet50().state_dict()
    assert list(full) == list(ref), "key order/naming differs from torchvision's resnet50"
    for k in ref:
        assert full[k].shape == ref[k].shape, k
    with open(OUT / "resnet50_keys.txt", "w") as f:
        for k, v in ref.items():
            f.write(f"{k}\t{','.join(str(d) for d in v.shape)}\n")


def png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def write_bomb() -> None:
    ihdr = struct.pack(">IIBBBBB", 100_000, 100_000, 8, 2, 0, 0, 0)  # 8-bit RGB
    idat = zlib.compress(b"\0" * 64)
    data = b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr) + png_chunk(b"IDAT", idat)
    (OUT / "bomb.png").write_bytes(data + png_chunk(b"IEND", b""))


def quadrants(w: int, h: int) -> Image.Image:
    """Four flat colours (red, green / blue, white), so orientation is easy to read back."""
    a = np.zeros((h, w, 3), np.uint8)
    a[: h // 2, : w // 2] = (220, 30, 30)
    a[: h // 2, w // 2 :] = (30, 200, 30)
    a[h // 2 :, : w // 2] = (30, 30, 220)
    a[h // 2 :, w // 2 :] = (240, 240, 240)
    return Image.fromarray(a)


def write_decode_fixtures(hopper: Image.Image) -> None:
    small = hopper.resize((48, 56), Image.BILINEAR)
    small.save(OUT / "progressive.jpg", quality=90, progressive=True)
    Image.open(OUT / "progressive.jpg").convert("RGB").save(OUT / "progressive_pil.png")

    quadrants(16, 16).convert("CMYK").save(OUT / "cmyk.jpg", quality=95)
    Image.open(OUT / "cmyk.jpg").convert("RGB").save(OUT / "cmyk_pil.png")

    # Stored 32 wide x 16 high; orientation 6 means "rotate 90 degrees clockwise to view".
    sideways = quadrants(32, 16)
    exif = Image.Exif()
    exif[0x0112] = 6
    sideways.save(OUT / "exif_orient6.jpg", quality=95, exif=exif.tobytes())
    upright = ImageOps.exif_transpose(Image.open(OUT / "exif_orient6.jpg")).convert("RGB")
    assert upright.size == (16, 32)
    upright.save(OUT / "exif_orient6_upright.png")


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(20240611)

    check_naming_matches_torchvision()

    model = TinyResNet(LAYERS, BASE_PLANES, NUM_CLASSES)
    randomise(model, gen)
    model.eval()
    state = model.state_dict()
    torch.save(state, OUT / "tiny_resnet.pth")
    torch.save(state, OUT / "tiny_resnet_legacy.pth", _use_new_zipfile_serialization=False)
    save_file({k: v.contiguous() for k, v in state.items()}, OUT / "tiny_resnet.safetensors")

    x = torch.rand((2, 3, 64, 64), generator=gen) * 4.0 - 2.0
    with torch.no_grad():
        y = model.features(x)

    src = Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg"
    shutil.copyfile(src, OUT / "grace_hopper.jpg")
    hopper = Image.open(OUT / "grace_hopper.jpg").convert("RGB")
    geometric = transforms.Compose(
        [
            transforms.Resize(256, interpolation=transforms.InterpolationMode.BILINEAR),
            transforms.CenterCrop(224),
        ]
    )
    to_tensor = transforms.Compose(
        [
            transforms.ToTensor(),
            transforms.Normalize(mean=[0.485, 0.456, 0.406], std=[0.229, 0.224, 0.225]),
        ]
    )
    cropped = geometric(hopper)
    pixels = torch.from_numpy(np.asarray(cropped, dtype=np.uint8).copy())
    t = to_tensor(cropped).unsqueeze(0)
    with torch.no_grad():
        hopper_features = model.features(t)
    stats = torch.cat([t.mean(dim=(0, 2, 3)), t.std(dim=(0, 2, 3))])

    save_file(
        {
            "input": x.contiguous(),
            "output": y.contiguous(),
            "hopper_pixels": pixels.contiguous(),
            "hopper_features": hopper_features.contiguous(),
            "hopper_stats": stats.contiguous(),
        },
        OUT / "tiny_resnet_io.safetensors",
    )

    write_decode_fixtures(hopper)
    write_bomb()

    total = 0
    for p in sorted(OUT.iterdir()):
        size = os.path.getsize(p)
        total += size
        print(f"{size:>9} B  {p.relative_to(OUT.parent.parent.parent.parent)}")
    print(f"{total:>9} B  total; tiny output max |y| = {y.abs().max().item():.4f}")
    print(f"hopper preprocessed: mean {stats[:3].tolist()} std {stats[3:].tolist()}")


if __name__ == "__main__":
    main()
