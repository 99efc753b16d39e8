"""Subspace rerouting (SSR) and GCG: a GCG-style suffix optimiser with losses on internal activations.

Modules: :mod:`.optimiser` (prompt slots, truncated forward, candidate sampling, the search loop),
:mod:`.losses` (Probe-/Steering-/Attention-SSR and GCG target losses and their objectives),
:mod:`.directions` (difference-of-means directions and logistic probes for tests and demos),
:mod:`.judge` (the refusal-phrase judge on the project's one matcher, the final-layer probe readout
and a rubric LLM judge on a local model), :mod:`.defence` (per-layer probe monitors at a fixed
false-positive rate: do they catch the attacks?), :mod:`.campaign` (resumable JSONL campaigns,
baseline refusal filter, stricter judging, reports).
"""
