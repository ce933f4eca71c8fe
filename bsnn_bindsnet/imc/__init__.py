r"""Binary synapses of a B-SNN on in-memory crossbars: two hardware pictures, kept apart.

**Compute: XNOR-BSNN's array** (Eq. 8-11; :func:`xnor_mac`, :func:`layer_mac`,
:func:`verify_network`, :func:`export_imc`). Weights are stored unipolar
(:math:`-1 \to 0`, :math:`+1 \to 1`), one weight row per output channel (conv: over the
:math:`C_{in} k_H k_W` patch, in ``torch.nn.functional.unfold`` order). For binary spikes
:math:`o \in \{0, 1\}`:

.. math:: \sum_j w_{ij} o_j = \sum_j \mathrm{XNOR}(w^u_{ij}, o_j) - M1_i,

:math:`M1_i` = the number of :math:`-1` weights of row :math:`i` (a spike on a :math:`+1` weight
adds a match, a silent input on a :math:`-1` weight adds one that :math:`M1` takes back). Every
input bit, spiking or silent, takes part in the XNOR at every step. :func:`xnor_mac` computes it
on bit-packed words with integer XNOR and popcount only. A residual input is a second MAC on
the same rows (:func:`layer_mac` with ``residual``).

**Cost: Lu & Sengupta's RRAM rows** (2020, Fig. 2; :func:`row_energy`, :func:`array_area`).
Here an input drives a word line (a *row*) and an output neuron reads a bit line (a
*column*), so the crossbar is the transpose of the weight rows above. The energy model rests
on: "Note that two rows per input are used due to the differential nature +1, −1 of the neuron
inputs. Hence, irrespective of the value of the input, one of the rows of the array will be
active resulting in power consumption." and "the power-consumption involved in accessing the
rows of the array occurs only on a spike event". The area model on: "Since, in a B-SNN, the
neuron outputs are 0 and 1, we can use just one row per bit-cell, thereby reducing the array
area by 50%. Note that a dummy column will be required for referencing purposes of sense
amplifiers".

* Energy = active rows per inference. BNN: one of an input's two rows per input per output
  position it feeds, one pass. B-SNN: one row per input *spike* per output position it feeds,
  summed over the :math:`T` steps. With :math:`f_j` the fan-out of input :math:`j` (output
  positions whose patch holds it; zero padding drives no row) and :math:`s_j` its spikes per
  inference: :math:`E_{BNN} = \sum_j f_j`, :math:`E_{B-SNN} = \sum_j f_j s_j`, so
  :math:`E_{B-SNN} / E_{BNN} = \bar s_f`, the fan-out-weighted mean spikes per input per
  inference, and the B-SNN draws less array energy exactly when :math:`\bar s_f < 1`
  (:data:`BREAK_EVEN_SPIKES`).
* The per-step read and XNOR-BSNN's picture: :func:`crossbar_energy` adds the column
  sensing (once per pass for the BNN, at every step for the B-SNN, which "need[s] to
  accumulate the dot-product evaluation over time"), weighted by a parameter, and puts the
  XNOR array of Eq. 10, which evaluates every input at every step (:math:`T` times the BNN,
  not event-driven), beside the event-driven rows; it also weights arrays by their width.
* Area = crossbar cells. With :math:`n` inputs per output position (:math:`C_{in} k_H k_W` or
  ``in_features``) and :math:`R` outputs: BNN :math:`2n \times R`, B-SNN
  :math:`n \times (R + 1)`; a conv's array is reused at every output position.
"""

from bsnn_bindsnet.imc.array import layer_mac, pack_bits, to_unipolar, xnor_mac
from bsnn_bindsnet.imc.cost import (BREAK_EVEN_SPIKES, array_area, crossbar_energy,
                                    fan_out_maps, row_activations, row_energy,
                                    xnor_macs_per_frame)
from bsnn_bindsnet.imc.export import IMC_FORMAT, export_imc, verify_network

__all__ = ["BREAK_EVEN_SPIKES", "IMC_FORMAT", "array_area", "crossbar_energy", "export_imc",
           "fan_out_maps", "layer_mac",
           "pack_bits", "row_activations", "row_energy", "to_unipolar", "verify_network",
           "xnor_mac", "xnor_macs_per_frame"]
