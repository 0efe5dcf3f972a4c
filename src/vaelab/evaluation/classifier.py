"""vaelab's own MNIST-family classifier: the feature network behind FID and the classifier
score (an Inception-Score analogue). A small CNN trained on the grayscale training images,
kept in the user cache and reused; its 128-D penultimate layer gives the features.

Numbers measured with it are comparable between vaelab runs, never with Inception-FID.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from ..data.datasets import load_split, to_float
from ..errors import RunError
from ..runs.checkpoint import load_weights, save_weights, write_json

FEATURES = 128
BATCH = 1000
EPOCHS = 5


class Classifier(nn.Module):
    """Two conv blocks (with batch norm) and a 128-unit layer (the features), then 10 logits."""

    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(),
            nn.MaxPool2d(2),  # (B, 32, 14, 14)
            nn.Conv2d(32, 64, 3, padding=1), nn.BatchNorm2d(64), nn.ReLU(),
            nn.MaxPool2d(2),  # (B, 64, 7, 7)
            nn.Flatten(), nn.Linear(64 * 7 * 7, FEATURES), nn.ReLU())
        self.head = nn.Sequential(nn.Dropout(0.3), nn.Linear(FEATURES, 10))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


def cache_dir() -> Path:
    """`$VAELAB_CACHE_DIR`, else the user cache directory (e.g. ~/.cache/vaelab)."""
    if os.environ.get("VAELAB_CACHE_DIR"):
        return Path(os.environ["VAELAB_CACHE_DIR"]).expanduser()
    import platformdirs

    return Path(platformdirs.user_cache_dir("vaelab"))


def classifier_dir(dataset: str) -> Path:
    return cache_dir() / "classifier" / dataset


@torch.no_grad()
def accuracy(model: Classifier, images: torch.Tensor, labels: torch.Tensor) -> float:
    model.eval()
    correct = sum((model(to_float(images[i:i + BATCH])).argmax(1) == labels[i:i + BATCH]).sum()
                  for i in range(0, len(images), BATCH))
    return float(correct) / len(images)


@torch.enable_grad()  # also when called under no_grad (evaluate's first, uncached use)
def train_classifier(dataset: str = "mnist", data_dir=None, epochs: int = EPOCHS,
                     seed: int = 0, limit: int = 0, log=print) -> tuple[Classifier, float]:
    """Train on the grayscale training images (Adam from 1e-3, x0.6 per epoch, batch 128);
    return the model and its test accuracy. `limit` uses the first N images only."""
    images, labels = load_split(dataset, "train", data_dir)
    test_images, test_labels = load_split(dataset, "test", data_dir)
    if limit:
        images, labels = images[:limit], labels[:limit]
    torch.manual_seed(seed)
    model = Classifier()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    schedule = torch.optim.lr_scheduler.ExponentialLR(optimizer, gamma=0.6)
    generator = torch.Generator().manual_seed(seed)
    for epoch in range(epochs):
        started = time.perf_counter()
        model.train()
        for index in torch.randperm(len(images), generator=generator).split(128):
            loss = F.cross_entropy(model(to_float(images[index])), labels[index])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        schedule.step()
        acc = accuracy(model, test_images, test_labels)
        log(f"classifier epoch {epoch + 1}/{epochs}: test accuracy {acc:.4f} "
            f"({time.perf_counter() - started:.1f}s)")
    return model.eval(), acc


def save_classifier(model: Classifier, dataset: str, test_accuracy: float,
                    epochs: int) -> Path:
    folder = classifier_dir(dataset)
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / ".model.safetensors.tmp"
    save_weights(tmp, model)
    tmp.replace(folder / "model.safetensors")
    write_json(folder / "config.json", {"dataset": dataset, "test_accuracy": test_accuracy,
                                        "epochs": epochs, "features": FEATURES})
    return folder


def load_classifier(dataset: str, data_dir=None, log=print) -> tuple[Classifier, dict]:
    """The cached classifier for `dataset`, trained first (a minute or two) if missing."""
    folder = classifier_dir(dataset)
    if not (folder / "model.safetensors").exists():
        log(f"training the {dataset} feature classifier once (cached in {folder}) ...")
        model, acc = train_classifier(dataset, data_dir, log=log)
        save_classifier(model, dataset, acc, EPOCHS)
    model = Classifier()
    load_weights(folder, model)
    try:
        info = json.loads((folder / "config.json").read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise RunError(f"{folder / 'config.json'}: unreadable ({e})") from None
    return model.eval(), info


@torch.no_grad()
def features_and_probs(model: Classifier,
                       images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Images (N, 1, 28, 28) float in [0, 1] -> features (N, 128) and p(y|x) (N, 10)."""
    feats, probs = [], []
    for i in range(0, len(images), BATCH):
        f = model.features(images[i:i + BATCH].float())
        feats.append(f)
        probs.append(model.head(f).softmax(1))
    return torch.cat(feats).double(), torch.cat(probs).double()
