"""audioclust: unsupervised clustering of audio recordings.

Stages form a chain of files: datasets → metadata → transform → extract →
(cluster | autoencoder) → report. Each stage module has a ``run(cfg, paths)``.
"""




__version__ = "0.1.0"
