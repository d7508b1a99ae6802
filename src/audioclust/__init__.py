"""audioclust: unsupervised clustering of audio recordings.

Stages form a chain of files: datasets → metadata → transform → extract →
(cluster | autoencoder) → report. Each stage (:mod:`audioclust.stages`) has a
``run(cfg, paths)``; the layers below take plain arguments (docs: Architecture).
"""

__version__ = "0.1.0"
