"""The single-character gate: can an encoder learn to tell 36 large characters apart, on held-out images?

A linear head on the mean of each encoder's output vectors, trained with AdamW (lr 1e-3, batch 8) on 5,000
rendered 256 × 256 images of one lowercase letter or digit (random font, size 90–160 px, position, paper and ink),
two epochs, scored on 512 other images. Encoders, all at the tiny checkpoint's sizes and PyTorch's default
initialisation, trained in turn in one run:

* ``cnn``: four stride-2 3×3 convolutions (16, 32, 64, 64 channels), the sanity check that the data can be learnt;
* ``vit``: a plain pre-norm ViT (patch 16, width 32, 4 layers, 2 heads, MLP 64, ``nn.TransformerEncoder``);
* ``sam``: dsocr's tiny SAM blocks (the same sizes; windowed attention in layers 0 and 2, window 14);
* ``sam window 8``: the same with windows of 8 patches, which tile the 16 × 16 grid without padding;
* ``sam all global``: the same with global attention in every layer;
* ``deepencoder``: the whole tiny DeepEncoder (SAM, neck, CLIP, projector), the tiny reader's encoder.

    python -m benchmarks.encoder_gate --out benchmarks/results/encoder_gate.json   # from the repository root
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import random
import string
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw
from torch import nn

from dsocr.data.synth import PRESETS, installed_families
from dsocr.model.deepencoder import DeepEncoder
from dsocr.model.sam import SamEncoder, resize_grid
from dsocr.model.tiny import build_tokenizer, padded_vocab_size, tiny_config

CLASSES = string.ascii_lowercase + string.digits
SIZE = 256
PATCH = 16


def render(rng: random.Random, fonts) -> tuple[torch.Tensor, int]:
    label = rng.randrange(len(CLASSES))
    font = rng.choice(fonts).font(rng.randint(90, 160))
    paper, ink = rng.randint(200, 255), rng.randint(0, 60)
    image = Image.new("RGB", (SIZE, SIZE), (paper,) * 3)
    draw = ImageDraw.Draw(image)
    left, top, right, bottom = draw.textbbox((0, 0), CLASSES[label], font=font)
    x = rng.randint(-left, max(-left, SIZE - right))
    y = rng.randint(-top, max(-top, SIZE - bottom))
    draw.text((x, y), CLASSES[label], font=font, fill=(ink,) * 3)
    pixels = np.asarray(image, dtype=np.float32) / 127.5 - 1.0  # the model's normalisation: mean 0.5, std 0.5
    return torch.from_numpy(pixels).permute(2, 0, 1), label


def images(count: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    rng, fonts = random.Random(seed), installed_families(PRESETS["reader"].families)
    drawn = [render(rng, fonts) for _ in range(count)]
    return torch.stack([pixels for pixels, _ in drawn]), torch.tensor([label for _, label in drawn])


class Cnn(nn.Module):
    def __init__(self):
        super().__init__()
        layers, channels = [], 3
        for out in (16, 32, 64, 64):
            layers += [nn.Conv2d(channels, out, 3, stride=2, padding=1), nn.ReLU()]
            channels = out
        self.body = nn.Sequential(*layers)
        self.width = channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x).flatten(2).transpose(1, 2)


class Vit(nn.Module):
    def __init__(self, width: int = 32, layers: int = 4, heads: int = 2, mlp: int = 64):
        super().__init__()
        self.patch = nn.Conv2d(3, width, PATCH, stride=PATCH)
        self.position = nn.Parameter(torch.randn(1, (SIZE // PATCH) ** 2, width) * 0.02)
        layer = nn.TransformerEncoderLayer(width, heads, mlp, dropout=0.0, activation="gelu", batch_first=True)
        layer.norm_first = True
        self.body = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.width = width

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(self.patch(x).flatten(2).transpose(1, 2) + self.position)


class SamBlocks(nn.Module):
    """dsocr's SAM up to its last block (before the neck): patch embedding, positions, blocks."""

    def __init__(self, sam: SamEncoder, width: int):
        super().__init__()
        self.sam, self.width = sam, width

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.sam.patch_embed(x)
        h = h + resize_grid(self.sam.pos_embed.permute(0, 3, 1, 2), h.shape[1]).permute(0, 2, 3, 1)
        for block in self.sam.blocks:
            h = block(h)
        return h.flatten(1, 2)


class TinyDeepEncoder(nn.Module):
    def __init__(self, encoder: DeepEncoder, width: int):
        super().__init__()
        self.encoder, self.width = encoder, width

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.encoder(x)


def encoders() -> dict:
    config = tiny_config(padded_vocab_size(build_tokenizer()))
    sam = config.sam
    return {
        "cnn": Cnn,
        "vit": Vit,
        "sam": lambda: SamBlocks(SamEncoder(sam), sam.width),
        "sam window 8": lambda: SamBlocks(SamEncoder(dataclasses.replace(sam, window_size=8)), sam.width),
        "sam all global": lambda: SamBlocks(
            SamEncoder(dataclasses.replace(sam, global_attn_indexes=tuple(range(sam.layers)))), sam.width
        ),
        "deepencoder": lambda: TinyDeepEncoder(DeepEncoder(config), config.n_embed),
    }


def train(make, train_set, held_out, epochs: int, batch: int, lr: float) -> dict:
    torch.manual_seed(0)
    encoder = make()
    head = nn.Linear(encoder.width, len(CLASSES))
    parameters = [*encoder.parameters(), *head.parameters()]
    optimizer = torch.optim.AdamW(parameters, lr=lr)
    x, y = train_set
    steps = epochs * len(x) // batch
    curve, started = [], time.perf_counter()
    for step in range(steps):
        rows = torch.arange(step * batch, (step + 1) * batch) % len(x)
        loss = nn.functional.cross_entropy(head(encoder(x[rows]).mean(1)), y[rows])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if (step + 1) % (steps // 4) == 0:
            with torch.no_grad():
                accuracy = (head(encoder(held_out[0]).mean(1)).argmax(1) == held_out[1]).float().mean()
            curve.append({"step": step + 1, "images_seen": (step + 1) * batch, "loss": float(loss.detach()),
                          "held_out_accuracy": float(accuracy)})  # fmt: skip
    return {
        "parameters": sum(p.numel() for p in encoder.parameters()),
        "seconds": time.perf_counter() - started,
        "curve": curve,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=5000)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    train_set, held_out = images(args.images, seed=1), images(512, seed=2)
    results = {
        "classes": len(CLASSES),
        "image_size": SIZE,
        "train_images": args.images,
        "held_out_images": 512,
        "epochs": args.epochs,
        "batch": args.batch,
        "lr": args.lr,
        "threads": torch.get_num_threads(),
        "encoders": {},
    }
    for name, make in encoders().items():
        results["encoders"][name] = train(make, train_set, held_out, args.epochs, args.batch, args.lr)
        final = results["encoders"][name]["curve"][-1]
        print(f"{name}: held-out accuracy {final['held_out_accuracy']:.3f}, loss {final['loss']:.2f}", flush=True)
    text = json.dumps(results, indent=2)
    if args.out:
        args.out.write_text(text + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
