"""bsnn_bindsnet: binary spiking neural networks (B-SNNs) on top of BindsNET.

Importing this package is cheap: it imports neither torch nor BindsNET (which pulls in
gymnasium, OpenCV and matplotlib); the submodules import what they need.
"""

from typing import Any

__version__ = "0.1.0"

__all__ = ["__version__", "sign_nonzero"]


def __getattr__(name: str) -> Any:  # PEP 562: lazy re-export
    if name == "sign_nonzero":
        from bsnn_bindsnet.snn.functional import sign_nonzero

        return sign_nonzero
    raise AttributeError(f"module 'bsnn_bindsnet' has no attribute {name!r}")
