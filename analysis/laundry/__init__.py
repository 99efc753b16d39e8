"""Laundry List positional subspace, crowding and steering (issue 15).

- :mod:`.channel`: locate movers and suppressors on Laundry List prompts, and the suppressors' OV
  components that Q-compose with the movers;
- :mod:`.subspace`: effective dimension, basis, principal angles, coordinates, decodability (crowding),
  overlap vs accuracy (order sensitivity);
- :mod:`.steering`: set END's coordinates in the subspace (a cached END pass), the affine rule fitted
  on dev, the per-prompt oracle, Wilson intervals;
- :mod:`.pipeline`: the two studies end to end (:func:`~.pipeline.positional_subspace`,
  :func:`~.pipeline.steering_study`); :mod:`.figures`: their plotly figures.
"""
