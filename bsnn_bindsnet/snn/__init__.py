"""The spiking network: neuron models (:mod:`.neurons`) and their one IF kernel (:mod:`.functional`),
BindsNET nodes (:mod:`.nodes`) and connections (:mod:`.connections`), typed synapses
(:mod:`.synapses`), a network as data (:mod:`.plan`), its BindsNET build/save/load
(:mod:`.network`) and input coding (:mod:`.encoding`).

Nothing is imported here: :mod:`.nodes`, :mod:`.connections` and :mod:`.network` import BindsNET.
"""
