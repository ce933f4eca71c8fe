"""Other simulators: NIR export and import (:mod:`.nir_io`, with :mod:`.nir_export`,
:mod:`.nir_import` and :mod:`.nir_common`), the adapters that let Norse and snnTorch run this
package's graphs (:mod:`.peers`), and the SpikingJelly ``ann2snn`` peer (:mod:`.spikingjelly`).
Each peer is an optional extra, imported only when used.
"""
