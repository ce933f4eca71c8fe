r"""B-SNNs to and from NIR, the Neuromorphic Intermediate Representation (``nir`` 1.0.x).

:func:`to_nir` turns a converted or direct-trained network (a :class:`~bsnn_bindsnet.snn.plan.
BSNNPlan` or a ``Network`` built from one) into a ``nir.NIRGraph``; :func:`from_nir` turns a
graph (or a ``.nir`` file) back into a plan, and :func:`nir_to_network` into a BindsNET
``Network`` of this project's node and connection classes. :func:`write_nir` / :func:`read_nir`
store graphs as NIR's HDF5 files (written atomically). ``nir`` (and ``h5py``) are optional:
``pip install bsnn-bindsnet[nir]``.

Mapping (one spiking layer ``L`` of the plan; node keys are layer names with ``.`` -> ``_``):

==============================  =============================================================
plan                            NIR
==============================  =============================================================
input ``(C, H, W)``             ``Input`` ``input``
conv synapse                    ``Conv2d`` ``L_syn`` (zero bias when the plan has none),
                                weight :math:`\alpha_c \operatorname{sign}(W)` (float32)
conv + folded avg-pool          ``Conv2d`` ``L_syn`` -> ``AvgPool2d`` ``L_syn_pool``
linear synapse                  (``Flatten`` ``L_syn_flat`` if the source is not 1-D) ->
                                ``Linear`` ``L_syn`` (``Affine`` when it has a bias)
avg-pool of spikes              ``AvgPool2d`` ``L_syn``
IF layer (SIF or RIF)           ``IF`` ``L``: ``r = 1``, ``v_threshold`` =
                                ``nextafter(theta, -inf)`` (float32) broadcast to the layer
                                shape, ``v_reset = 0``
non-firing readout              ``I`` ``readout`` (``r = 1``) -> ``Output`` ``output``
residual synapse (from l-2)     a second chain ``L_res`` (same kinds of nodes, its own weight
                                :math:`f \operatorname{sign}(W)`) into the same ``IF`` node
spike max-pool                  refused: NIR 1.0 has no max-pooling node
==============================  =============================================================

Binary weights stay binary: the exported weight is exactly ``scale * sign`` in float32 (the
effective weight of :class:`~bsnn_bindsnet.snn.connections.BinaryConnection`), and
:func:`from_nir` rebuilds a binary synapse (``int8`` sign + per-output scale) for every weight
whose rows each hold one magnitude :math:`\alpha > 0` (``+-alpha``), unless the node's metadata
says ``binary = False`` (a full-precision layer that happens to have such rows).

Reset and initial potential (the decision): NIR's ``IF`` resets to ``v_reset``; the subtractive
reset has no field. Every ``IF`` is exported with ``v_reset = 0``, and the graph says how it
resets and starts in ``graph.metadata["bsnn_bindsnet"]``:

- ``"reset"``: ``"zero"`` (RIF: NIR's own semantics, ``v <- v_reset = 0``) or ``"subtract"``
  (SIF: ``v <- v - v_threshold``; a reader that ignores the key resets to 0 instead);
- ``"v_init"``: ``"zero"`` (NIR's implicit :math:`v(0) = 0`) or ``"half"``
  (:math:`v(0) = v_{threshold}/2`; NIR has no initial-state field);
- ``"spike_condition"``: ``"v > v_threshold"``. BindsNET fires when the potential *reaches*
  :math:`\theta`, NIR's equations (and Norse, snnTorch) when it *exceeds* ``v_threshold``. The
  file stores ``v_threshold = nextafter(theta, -inf)`` in float32 (``"threshold_rule"``): no
  float32 lies between the two, so ``v > v_threshold`` exactly when ``v >= theta``, and a peer
  fires on the same steps even when the potential lands on :math:`\theta`. On import, every
  graph is read with NIR's rule (:math:`\theta` = ``nextafter(v_threshold, +inf)``), except
  this package's nir-v1 files, whose ``"v >= v_threshold"`` says they stored :math:`\theta`.

Each ``IF`` node repeats ``reset`` and ``v_init`` in its own metadata, with its plan ``name``.
A graph without these keys (from another tool) is read with NIR's semantics: reset to
``v_reset`` (which must be 0), :math:`v(0) = 0`, fire at ``v > v_threshold``. A peer ignores
the keys: it runs a SIF graph as RIF and starts from :math:`v = 0`; ``to_nir(...,
peer_compatible=True)`` refuses such a network (``bsnn export-nir --peer-compatible``).
Imports refuse NaN/inf weights or biases and NaN, infinite or non-positive thresholds, naming
the node; ``plan.info.nir["full_precision"]`` lists the layers whose weights are not
:math:`\pm\alpha` rows. Files are read without nir's own type inference, which refuses what the
peers write (a batch dimension in ``Input``, scalar parameters): :func:`from_nir` checks the
shapes itself. Time is discrete, one NIR step per BindsNET
step, ``dv = R I`` with ``r = 1`` (other ``r`` are refused).

Graphs written by peers (checked in ``tests/test_nir_io.py``): Norse 1.1.0's ``to_nir`` writes
``IAFCell`` as ``IF`` (``r = 1``, ``v_reset = 0``, scalar parameters: the layer shape is what its
synapse produces) and keeps the sample's batch dimension in ``Input`` (dropped when the nodes it
feeds do not take it); snnTorch 1.0.0's ``export_to_nir`` writes ``Leaky(beta)`` as ``LIF``
with ``tau = dt/(1-beta)``, ``r = tau/dt``, ``v_leak = 0``, ``v_reset = 0``, so ``beta = 1`` is
``tau = r = inf``: no leak and ``v <- v + I``, read as an ``IF`` (any other ``LIF``, and
``CubaLIF``, are refused by name). Neither writes an ``I``: a graph without one gets its readout
from its ``Output``: a synapse into it (a network ending in ``Linear``) becomes a readout that
integrates its current; a spiking layer into it stays a layer and the readout counts its spikes.
"""

from bsnn_bindsnet.interop.nir_common import (METADATA_KEY, NIR_FORMAT, SPIKE_CONDITION,
                                      SUPPORTED_NODES, nir, read_nir)
from bsnn_bindsnet.interop.nir_export import to_nir, write_nir
from bsnn_bindsnet.interop.nir_import import from_nir, nir_to_network

__all__ = ["METADATA_KEY", "NIR_FORMAT", "SPIKE_CONDITION", "SUPPORTED_NODES", "from_nir", "nir",
           "nir_to_network", "read_nir", "to_nir", "write_nir"]
