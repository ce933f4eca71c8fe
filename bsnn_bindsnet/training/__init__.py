"""Training, above :mod:`bsnn_bindsnet.ann` and :mod:`bsnn_bindsnet.direct`: the model registry
(:mod:`.models`), recipes and presets (:mod:`.recipes`), one epoch and one evaluation
(:mod:`.loop`), and a whole run with checkpoints and resume (:mod:`.fit`:
``from bsnn_bindsnet.training.fit import RunConfig, fit``).

:mod:`.fit` is not imported here (it imports the data and simulation layers); load a saved model
with :func:`.models.load_model`.
"""

from bsnn_bindsnet.training.loop import EpochStats, evaluate, make_optimizer, train_one_epoch
from bsnn_bindsnet.training.models import MODELS, get_model, load_model
from bsnn_bindsnet.training.recipes import (FAMILIES, PRESETS, Preset, PresetFamily, Recipe,
                                            get_preset, register_family)

__all__ = ["FAMILIES", "MODELS", "PRESETS", "EpochStats", "Preset", "PresetFamily", "Recipe",
           "evaluate", "get_model", "get_preset", "load_model", "make_optimizer", "register_family",
           "train_one_epoch"]
