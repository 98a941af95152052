"""Where an encoder's ImageNet weights come from, and how a weights file becomes its state_dict.

Two kinds of source, neither downloading at run time unless a network exists: a file shipped in
an installed package (`PackageWeights`; missing: one line naming the extra) and a torchvision
weights enum cached in the torch cache (`TorchvisionWeights`; offline and not cached: one line
says which file to put where; the download has a timeout, so it never hangs). Files from users
are untrusted: every read is `torch.load(weights_only=True)` of a dict of tensors.
Details: docs/models.md, "Where ImageNet weights come from"."""

from __future__ import annotations

import importlib
import os
import socket
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from maskdepth.core.errors import MaskdepthError

PRETRAINED_EXTRA = "pip install 'maskdepth[pretrained]'"
DOWNLOAD_TIMEOUT_S = 30  # a torchvision download that stalls longer is an error, never a hang
RANDOM_INIT = ("", "none")  # `weights` values meaning random initialisation
IMAGENET = "imagenet"
DEFAULT = "default"  # ImageNet weights where the encoder has them, else random initialisation


def require_package(module: str, what: str):
    """Import `module` or stop with one line naming the extra that installs it."""
    try:
        return importlib.import_module(module)
    except ImportError:
        raise MaskdepthError(f"{what} needs the package {module!r}: {PRETRAINED_EXTRA}") from None


def read_state_dict(path: str | os.PathLike, what: str) -> dict[str, torch.Tensor]:
    """A state_dict (dict of tensors; a {"state_dict": ...} wrapper is opened) from a local file."""
    path = Path(path)
    if not path.is_file():
        raise MaskdepthError(f"{what} {path}: no such file")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise MaskdepthError(f"{what} {path}: cannot be read ({type(exc).__name__}: {exc})") from exc
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not state or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise MaskdepthError(f"{what} {path}: not a state_dict (a dict of tensors)")
    return state


@dataclass(frozen=True)
class PackageWeights:
    """ImageNet weights shipped as a file inside an installed package."""

    package: str  # the importable module
    distribution: str  # its name on the package index
    locate: Callable[[object], str]  # module -> the file's path

    @property
    def source(self) -> str:
        return f"package {self.distribution} (offline)"

    def path(self, encoder: str) -> Path:
        module = require_package(self.package, f"encoder {encoder} with ImageNet weights")
        return Path(self.locate(module))


@dataclass(frozen=True)
class TorchvisionWeights:
    """ImageNet weights of a torchvision weights enum, read from the torch cache."""

    enum: str  # e.g. "ResNet18_Weights"
    member: str = "IMAGENET1K_V1"

    @property
    def source(self) -> str:
        return f"torchvision {self.enum}.{self.member} (torch cache; downloaded where a network exists)"

    def url(self) -> str:
        import torchvision

        return getattr(getattr(torchvision.models, self.enum), self.member).url

    def cached_path(self) -> Path:
        return Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(self.url())

    def path(self, encoder: str) -> Path:
        """The cached file, downloaded first when missing (with a timeout)."""
        target = self.cached_path()
        if target.is_file():
            return target
        url = self.url()
        if os.environ.get("MASKDEPTH_OFFLINE"):
            reason = "MASKDEPTH_OFFLINE is set"
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            saved = socket.getdefaulttimeout()
            socket.setdefaulttimeout(DOWNLOAD_TIMEOUT_S)
            try:
                torch.hub.download_url_to_file(url, str(target), progress=False)
                return target
            except Exception as exc:  # no network, DNS, timeout, HTTP error: all one line
                reason = f"the download failed ({type(exc).__name__}: {str(exc)[:120]})"
            finally:
                socket.setdefaulttimeout(saved)
        raise MaskdepthError(
            f"encoder {encoder}: ImageNet weights not in the torch cache and {reason}; "
            f"put {url} at {target} (or pass --weights FILE, or --weights none)"
        )


def inflate_first_conv(state: dict[str, torch.Tensor], key: str, in_channels: int, what: str) -> None:
    """6-channel input (bg + fg_bg): the pretrained RGB filters copied to both triplets and halved,
    so the layer first responds to the mean of the two images as the pretrained net to one."""
    weight = state.get(key)
    if weight is None or weight.shape[1] == in_channels:
        return
    if weight.dim() == 4 and weight.shape[1] == 3 and in_channels == 6:
        state[key] = torch.cat([weight, weight], dim=1) / 2
        return
    raise MaskdepthError(f"{what}: {key} has {weight.shape[1]} input channels, the encoder takes {in_channels}")


def load_into(module: torch.nn.Module, state: dict[str, torch.Tensor], what: str) -> None:
    """load_state_dict(strict) with one line naming what did not fit."""
    mine = module.state_dict()
    missing = sorted(set(mine) - set(state))
    unexpected = sorted(set(state) - set(mine))
    wrong = sorted(k for k in set(mine) & set(state) if tuple(mine[k].shape) != tuple(state[k].shape))
    if missing or unexpected or wrong:
        parts = [f"{label} {keys[:3]}" for label, keys in
                 (("missing", missing), ("unexpected", unexpected), ("wrong shape", wrong)) if keys]
        raise MaskdepthError(f"{what}: does not fit the encoder ({'; '.join(parts)})")
    module.load_state_dict(state, strict=True)
