"""The ``bsnn`` console script: :mod:`.main` (the parser and dispatch), :mod:`.train` (train,
evaluate, presets), :mod:`.convert` (convert, simulate, export-nir, import-nir), :mod:`.zoo` and
:mod:`.checks` (argument checks made before torch is imported).
"""
