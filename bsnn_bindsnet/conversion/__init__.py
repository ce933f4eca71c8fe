"""ANN -> B-SNN conversion: the converter (:mod:`.convert`, ``ann_to_bsnn``), its mapping of
module types to rules (:mod:`.rules`) and data-based threshold balancing (:mod:`.normalize`).
"""
