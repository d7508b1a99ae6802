"""The pipeline's stages, one module each (metadata, transform, extract, cluster, autoencoder, report, prepare).

Each stage reads the config and the previous stage's files, and hands the layers below plain
arguments. Nothing imports a stage but the command line (:mod:`audioclust.cli`).
"""
