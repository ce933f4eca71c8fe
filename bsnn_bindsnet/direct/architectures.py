"""Block codes of the direct-training presets (see :mod:`bsnn_bindsnet.direct.model`).

Residual inputs need :math:`o^{l-1}` and :math:`o^{l-2}` of equal shape, so in the paper's
VGG-11 schedule (blocks 3..7 and 9 get :math:`o^{l-2}`: 1-2-3 ... 5-6-7, 7-8-9) the widths of
blocks 1-6 and of 7-8 are equal and pooling sits where no residual crosses it.
"""

VGG11_RESIDUAL = ("c128p", "c128", "c128r", "c128r", "c128r", "c128r", "c256pr", "c256",
                  "f1024r", "f1024")
FMNIST_RESIDUAL = ("c32p", "c32", "c32pr", "c64", "c64", "c64r", "f256r")
DIGITS_RESIDUAL = ("c16", "c16", "c16r", "f64")
