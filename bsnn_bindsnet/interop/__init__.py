"""Other simulators: NIR export and import (:mod:`.nir_io`, with :mod:`.nir_export`,
:mod:`.nir_import` and :mod:`.nir_common`) and the SpikingJelly ``ann2snn`` peer
(:mod:`.spikingjelly`). Each peer is an optional extra, imported only when used.
"""
