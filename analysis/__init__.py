"""analysis: the science, as functions on tensors, arrays and DataFrames (plus the plotly figures drawn
from them). It may run forward passes through :mod:`probes`; it never reaches into a model's modules
itself, and it imports nothing from :mod:`apps`. Each subpackage's ``__init__`` maps its modules and
re-exports its public API.

Talking Heads: :mod:`.channels` (component composition scores, receiver null, scans, figures, removal
effects), :mod:`.tasks` (IOI and Laundry List prompts, scoring, the organism's trainer),
:mod:`.circuits` (the IOI circuit from data: DLA, ablation, path patching), :mod:`.interventions`
(hook interventions: component rescaling, mean ablation, subspace steering), :mod:`.edit_search`
(rank-1 OV edits that raise Laundry List accuracy).

Refusal and rerouting: :mod:`.refusal` (probes, refusal directions, ablation/addition checks, safety
heads), :mod:`.rerouting` (SSR and GCG losses, the suffix optimiser, success checks, campaigns,
reports, the defence view).

Representations: :mod:`.similarity` (CKA, CCA, Procrustes, RSA, mutual-kNN), :mod:`.convergent`
(neuron matching between networks), :mod:`.compare_layers` (layer × layer similarity of two models),
:mod:`.alignment` (3D shapes, PointNet, CCA-subspace alignment, retrieval, search), :mod:`.arrays`
(the input checks every metric shares).
"""
