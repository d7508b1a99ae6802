"""The autoencoder: network components, data, one LightningModule per objective, training."""
