"""The plain-PyTorch baseline: pytorch/examples `vae/main.py`, ported line for line.

The model, loss and loop are the example's: MLP 784-400-20, sigmoid outputs scored with
`binary_cross_entropy(reduction="sum")`, Adam 1e-3, batch 128, a shuffled `DataLoader`
over a dataset that turns each image into a PIL image and then a float tensor one at a time,
as `torchvision.datasets.MNIST` with `transforms.ToTensor()` does (torchvision itself is not
a dependency; `to_tensor` below is its `ToTensor` for 8-bit grayscale images). Only the
imports and the timing are ours.
"""

from __future__ import annotations

import time

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn, optim
from torch.utils.data import DataLoader, Dataset

BATCH_SIZE = 128
LR = 1e-3
LOG_INTERVAL = 10


def to_tensor(picture: Image.Image) -> torch.Tensor:
    """torchvision.transforms.functional.to_tensor, for the 8-bit grayscale images here."""
    default_float_dtype = torch.get_default_dtype()
    array = torch.from_numpy(np.array(picture, np.uint8, copy=True))
    array = array.view(picture.size[1], picture.size[0], len(picture.getbands()))
    array = array.permute((2, 0, 1)).contiguous()
    if isinstance(array, torch.ByteTensor):
        return array.to(dtype=default_float_dtype).div(255)
    return array


class MNISTLikeTorchvision(Dataset):
    """torchvision.datasets.MNIST's item access: tensor row -> PIL image -> transform."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, transform=to_tensor):
        self.data, self.targets, self.transform = images, labels, transform

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, index: int):
        img, target = self.data[index], int(self.targets[index])
        img = Image.fromarray(img.numpy())  # mode "L" for uint8, as torchvision asks
        if self.transform is not None:
            img = self.transform(img)
        return img, target


class VAE(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(784, 400)
        self.fc21 = nn.Linear(400, 20)
        self.fc22 = nn.Linear(400, 20)
        self.fc3 = nn.Linear(20, 400)
        self.fc4 = nn.Linear(400, 784)

    def encode(self, x):
        h1 = F.relu(self.fc1(x))
        return self.fc21(h1), self.fc22(h1)

    def reparameterize(self, mu, logvar):
        std = torch.exp(0.5 * logvar)
        eps = torch.randn_like(std)
        return mu + eps * std

    def decode(self, z):
        h3 = F.relu(self.fc3(z))
        return torch.sigmoid(self.fc4(h3))

    def forward(self, x):
        mu, logvar = self.encode(x.view(-1, 784))
        z = self.reparameterize(mu, logvar)
        return self.decode(z), mu, logvar


def loss_function(recon_x, x, mu, logvar):
    BCE = F.binary_cross_entropy(recon_x, x.view(-1, 784), reduction="sum")
    KLD = -0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp())
    return BCE + KLD


def run(train_images: torch.Tensor, train_labels: torch.Tensor, test_images: torch.Tensor,
        test_labels: torch.Tensor, epochs: int, seed: int = 1, log=print) -> dict:
    """Train as the example does (images (N, 28, 28) uint8); return per-epoch training
    seconds and test losses."""
    torch.manual_seed(seed)
    train_loader = DataLoader(MNISTLikeTorchvision(train_images, train_labels),
                              batch_size=BATCH_SIZE, shuffle=True)
    test_loader = DataLoader(MNISTLikeTorchvision(test_images, test_labels),
                             batch_size=BATCH_SIZE, shuffle=False)
    model = VAE()
    optimizer = optim.Adam(model.parameters(), lr=LR)
    epoch_seconds, test_losses = [], []
    for _ in range(epochs):
        started = time.perf_counter()
        model.train()
        train_loss = 0
        for batch_idx, (data, _) in enumerate(train_loader):
            optimizer.zero_grad()
            recon_batch, mu, logvar = model(data)
            loss = loss_function(recon_batch, data, mu, logvar)
            loss.backward()
            train_loss += loss.item()
            optimizer.step()
            if batch_idx % LOG_INTERVAL == 0:  # the example prints its progress here
                log(f"Train Epoch: {len(epoch_seconds) + 1} "
                    f"[{batch_idx * len(data)}/{len(train_loader.dataset)}]\tLoss: "
                    f"{loss.item() / len(data):.6f}")
        epoch_seconds.append(time.perf_counter() - started)
        model.eval()
        test_loss = 0
        with torch.no_grad():
            for data, _ in test_loader:
                recon_batch, mu, logvar = model(data)
                test_loss += loss_function(recon_batch, data, mu, logvar).item()
        test_losses.append(test_loss / len(test_loader.dataset))
    return {"epoch_seconds": epoch_seconds, "test_losses": test_losses,
            "images": len(train_images)}
