"""bsnn_bindsnet: binary spiking neural networks (B-SNNs) on top of BindsNET.

Importing this package is cheap: BindsNET (which pulls in gymnasium, OpenCV and matplotlib)
is imported only by the modules that build or run spiking networks.
"""

from bsnn_bindsnet.functional import sign_nonzero

__version__ = "0.1.0"

__all__ = ["__version__", "sign_nonzero"]
