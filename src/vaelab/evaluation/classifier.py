"""vaelab's own classifier per dataset: the feature network behind FID and the classifier
score (an Inception-Score analogue). A small CNN trained on the dataset's labelled training
images as stored (not binarized), kept in the user cache per dataset and reused; its 128-D
penultimate layer gives the features. For MNIST it is the network it always was.

Numbers measured with it are comparable between vaelab runs on one dataset, never with
Inception-FID. Unlabelled images have no classifier: FID is then skipped.
"""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from ..config import DataConfig
from ..data.cache import cache_dir
from ..data.datasets import Split, stored_splits, to_float
from ..errors import DataError, RunError
from ..runs.checkpoint import load_weights, save_weights, write_json

FEATURES = 128
BATCH = 1000
EPOCHS = 5


class Classifier(nn.Module):
    """Two conv blocks (with batch norm) and a 128-unit layer (the features), then a logit
    per class, for images of `shape` (C, H, W)."""

    def __init__(self, shape: tuple[int, int, int] = (1, 28, 28), classes: int = 10):
        super().__init__()
        self.shape, self.classes = tuple(shape), classes
        channels, height, width = shape
        self.features = nn.Sequential(
            nn.Conv2d(channels, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(),
            nn.MaxPool2d(2),  # (B, 32, H/2, W/2)
            nn.Conv2d(32, 64, 3, padding=1), nn.BatchNorm2d(64), nn.ReLU(),
            nn.MaxPool2d(2),  # (B, 64, H/4, W/4)
            nn.Flatten(), nn.Linear(64 * (height // 4) * (width // 4), FEATURES), nn.ReLU())
        self.head = nn.Sequential(nn.Dropout(0.3), nn.Linear(FEATURES, classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


def as_data(dataset: str | DataConfig) -> DataConfig:
    return dataset if isinstance(dataset, DataConfig) else DataConfig(dataset=dataset)


def classifier_dir(dataset: str | DataConfig) -> Path:
    """The cache folder of a dataset's classifier: by name for a built-in dataset as
    stored, else by the resolved path and the resize/convert options."""
    data = as_data(dataset)
    if data.builtin and not (data.image_size or data.channels):
        return cache_dir() / "classifier" / data.dataset
    where = data.dataset if data.builtin else str(Path(data.dataset).expanduser().resolve())
    key = hashlib.sha256(where.encode()).hexdigest()[:12]
    return cache_dir() / "classifier" / (f"{Path(data.dataset).stem}-{key}-"
                                         f"s{data.image_size}-c{data.channels}")


def labelled_splits(dataset: str | DataConfig, data_dir=None) -> tuple[Split, Split, int]:
    """(train, test, number of classes) of a dataset as stored; unlabelled data raises."""
    data = as_data(dataset)
    train, test, classes = stored_splits(data, data_dir)
    if not classes:
        raise DataError(f"{data.dataset} has no classes (no class folders or labels), so "
                        f"vaelab has no classifier for FID on it")
    return train, test, len(classes)


@torch.no_grad()
def accuracy(model: Classifier, images: torch.Tensor, labels: torch.Tensor) -> float:
    model.eval()
    correct = sum((model(to_float(images[i:i + BATCH])).argmax(1) == labels[i:i + BATCH]).sum()
                  for i in range(0, len(images), BATCH))
    return float(correct) / len(images)


@torch.enable_grad()  # also when called under no_grad (evaluate's first, uncached use)
def train_classifier(dataset: str | DataConfig = "mnist", data_dir=None, epochs: int = EPOCHS,
                     seed: int = 0, limit: int = 0, log=print) -> tuple[Classifier, float]:
    """Train on the training images as stored (Adam from 1e-3, x0.6 per epoch, batch 128);
    return the model and its test accuracy. `limit` uses the first N images only."""
    train, test, classes = labelled_splits(dataset, data_dir)
    images, labels = (train.images[:limit], train.labels[:limit]) if limit else \
        (train.images, train.labels)
    torch.manual_seed(seed)
    model = Classifier(tuple(images.shape[1:]), classes)
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
        acc = accuracy(model, test.images, test.labels)
        log(f"classifier epoch {epoch + 1}/{epochs}: test accuracy {acc:.4f} "
            f"({time.perf_counter() - started:.1f}s)")
    return model.eval(), acc


def save_classifier(model: Classifier, dataset: str | DataConfig, test_accuracy: float,
                    epochs: int) -> Path:
    folder = classifier_dir(dataset)
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / ".model.safetensors.tmp"
    save_weights(tmp, model)
    tmp.replace(folder / "model.safetensors")
    write_json(folder / "config.json", {
        "dataset": as_data(dataset).dataset, "test_accuracy": test_accuracy, "epochs": epochs,
        "features": FEATURES, "shape": list(model.shape), "classes": model.classes})
    return folder


def load_classifier(dataset: str | DataConfig, data_dir=None, log=print
                    ) -> tuple[Classifier, dict]:
    """The cached classifier for `dataset`, trained first (a minute or two) if missing."""
    folder = classifier_dir(dataset)
    if not (folder / "model.safetensors").exists():
        log(f"training the {as_data(dataset).dataset} feature classifier once (cached in "
            f"{folder}) ...")
        model, acc = train_classifier(dataset, data_dir, log=log)
        save_classifier(model, dataset, acc, EPOCHS)
    try:
        info = json.loads((folder / "config.json").read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise RunError(f"{folder / 'config.json'}: unreadable ({e})") from None
    model = Classifier(tuple(info.get("shape", (1, 28, 28))), info.get("classes", 10))
    load_weights(folder, model)
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
