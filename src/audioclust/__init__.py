"""audioclust: unsupervised clustering of audio recordings.

Stages form a chain of files: datasets → metadata → transform → extract →
(cluster | autoencoder) → report. Each stage (:mod:`audioclust.stages`) has a
``run(cfg, paths)``; the layers below take plain arguments (docs: Architecture).
"""

import os

# OpenMP threads (torch, scikit-learn) that wait for work by spinning hold cores that another job
# needs: two stage-05 runs side by side took four times as long. libgomp reads this once, when torch or
# scikit-learn loads it, so it is set here, before either; a value the user set wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

__version__ = "0.1.0"
