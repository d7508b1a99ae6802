import math

import pytest
import torch
from torch import nn

from audioclust.core.errors import ConfigError
from audioclust.deep.components import MODELS, build_model


@pytest.mark.parametrize("name", sorted(MODELS))
@pytest.mark.parametrize("size", [(96, 48), (64, 64), (100, 40), (7, 13), (1, 1)])
def test_output_shape_equals_input_shape(name, size):
    torch.manual_seed(0)
    model = build_model(name, input_shape=(1, *size), latent_dim=3)
    x = torch.rand(2, 1, *size)
    with torch.no_grad():
        out = model(x)
        assert model.decode(torch.zeros(3, 3)).shape == (3, 1, *size)
    assert out[0].shape == x.shape
    assert out[1].shape == (2, 3)


def test_dcec_layers_and_bottleneck_sizes():
    model = build_model("dcec", input_shape=(1, 96, 48), latent_dim=10)
    convs = [m for m in model.features if isinstance(m, nn.Conv2d)]
    assert [(c.out_channels, c.kernel_size, c.stride) for c in convs] == [
        (32, (5, 5), (2, 2)), (64, (5, 5), (2, 2)), (128, (3, 3), (2, 2))]
    # 96 -> 48 -> 24 -> 12 and 48 -> 24 -> 12 -> 6: 128 * 12 * 6 = 9216 features into the embedding
    assert model.bottleneck == (128, 12, 6)
    assert model.embedding.in_features == 9216 and model.embedding.out_features == 10
    deconvs = [m for m in model.decoder if isinstance(m, nn.ConvTranspose2d)]
    assert [(d.in_channels, d.out_channels) for d in deconvs] == [(128, 64), (64, 32), (32, 1)]
    # odd side 25 (100 -> 50 -> 25 -> 13): the mirrored deconv needs no output padding there
    odd = build_model("dcec", input_shape=(1, 100, 40), latent_dim=10)
    assert odd.sizes == [(100, 40), (50, 20), (25, 10), (13, 5)]
    assert [d.output_padding for d in odd.decoder if isinstance(d, nn.ConvTranspose2d)] == [(0, 1), (1, 1), (1, 1)]


def test_embedding_is_linear_so_it_can_be_negative():
    torch.manual_seed(0)
    model = build_model("dcec", input_shape=(1, 16, 8), latent_dim=8)
    z = model.encode(torch.rand(16, 1, 16, 8))
    assert (z < 0).any() and (z > 0).any()


def test_conv4_blocks():
    model = build_model("conv4", input_shape=(1, 96, 48), latent_dim=10)
    convs = [m for m in model.features if isinstance(m, nn.Conv2d)]
    assert [c.out_channels for c in convs] == [128, 128, 64, 32]
    assert all(c.kernel_size == (3, 3) and c.padding == (1, 1) for c in convs)
    assert sum(isinstance(m, nn.MaxPool2d) for m in model.features) == 4
    # 96 -> 48 -> 24 -> 12 -> 6 and 48 -> 24 -> 12 -> 6 -> 3
    assert model.bottleneck == (32, 6, 3)


def test_vae_kl_term_by_hand():
    model = build_model("vae", input_shape=(1, 4, 2), latent_dim=2, beta=0.5)
    with torch.no_grad():  # mu = 1 and logvar = 0 in both dimensions, whatever the input
        for head, bias in ((model.embedding, 1.0), (model.logvar, 0.0)):
            head.weight.zero_()
            head.bias.fill_(bias)
    x = torch.rand(3, 1, 4, 2)
    parts = model.training_loss(x)
    # KL(N(1, 1) || N(0, 1)) per dimension = -0.5 * (1 + 0 - 1 - 1) = 0.5; two dimensions = 1.0,
    # divided by the 4 * 2 = 8 pixels per image
    assert parts["kl"].item() == pytest.approx(1.0 / 8)
    assert parts["loss"].item() == pytest.approx(parts["recon"].item() + 0.5 / 8)
    model.eval()
    assert torch.equal(model.encode(x), torch.ones(3, 2))  # the embedding is the mean
    assert torch.equal(model(x)[1], torch.ones(3, 2))


def test_vae_samples_in_training_mode():
    torch.manual_seed(0)
    model = build_model("vae", input_shape=(1, 8, 8), latent_dim=4).train()
    x = torch.rand(2, 1, 8, 8)
    _, z, mu, logvar = model(x)
    assert not torch.allclose(z, mu)
    assert logvar.shape == mu.shape == (2, 4)


def test_dcec_loss_is_mse():
    model = build_model("dcec", input_shape=(1, 8, 8), latent_dim=2)
    x = torch.rand(3, 1, 8, 8)
    x_hat = model(x)[0]
    expected = ((x_hat - x) ** 2).mean().item()
    assert model.training_loss(x)["loss"].item() == pytest.approx(expected)


def test_unknown_architecture_and_bad_shapes():
    with pytest.raises(ConfigError, match="dcec, conv4, vae"):
        build_model("resnet")
    with pytest.raises(ConfigError, match="input_shape"):
        build_model("dcec", input_shape=(3, 8, 8))
    with pytest.raises(ConfigError, match="latent_dim"):
        build_model("dcec", input_shape=(1, 8, 8), latent_dim=0)


def test_parameter_count_of_dcec_at_96x48():
    model = build_model("dcec", input_shape=(1, 96, 48), latent_dim=10)
    convs = (1 * 32 * 25 + 32) + (32 * 64 * 25 + 64) + (64 * 128 * 9 + 128)
    linear = (9216 * 10 + 10) + (10 * 9216 + 9216)
    deconvs = (128 * 64 * 9 + 64) + (64 * 32 * 25 + 32) + (32 * 1 * 25 + 1)
    assert sum(p.numel() for p in model.parameters()) == convs + linear + deconvs
    assert math.prod(model.input_shape) == 96 * 48


@pytest.mark.parametrize("name", sorted(set(MODELS) - {"mlp_pca"}))
def test_init_from_training_sets_the_mean_image_level(name):
    model = build_model(name, input_shape=(1, 12, 8), latent_dim=3)
    with torch.no_grad():
        for p in model.parameters():
            p.zero_()
    model.init_from_training(torch.full((5, 1, 12, 8), 0.1) + 0.4 * torch.arange(5.0).view(5, 1, 1, 1) / 4)
    # every weight and every other bias 0: the output is the last layer's bias alone, the mean pixel 0.3
    assert torch.allclose(model.decode(torch.ones(2, 3)), torch.full((2, 1, 12, 8), 0.3))


def test_every_embedding_architecture_of_the_config_is_a_model_for_vectors():
    from audioclust.core.vocab import EMBEDDING_ARCHITECTURES
    for name in EMBEDDING_ARCHITECTURES:
        model = build_model(name, input_shape=(1, 1, 7), latent_dim=3)
        assert model.encode(torch.zeros(2, 1, 1, 7)).shape == (2, 3)


def test_mlp_pca_starts_as_pca_of_the_training_vectors():
    from sklearn.decomposition import PCA
    g = torch.Generator().manual_seed(0)
    X = torch.randn(60, 1, 1, 12, generator=g) * torch.linspace(3.0, 0.2, 12)  # distinct variances: unique axes
    model = build_model("mlp_pca", input_shape=(1, 1, 12), latent_dim=4)
    model.init_from_training(X)
    pca = PCA(4).fit(X.flatten(1).numpy())
    with torch.no_grad():
        z = model.encode(X)
        x_hat = model.decode(z)
    expected = pca.transform(X.flatten(1).numpy())
    signs = torch.sign((z * torch.from_numpy(expected).float()).sum(0))  # a component's sign is arbitrary
    assert torch.allclose(z * signs, torch.from_numpy(expected).float(), atol=1e-4)
    assert torch.allclose(x_hat.flatten(1), torch.from_numpy(pca.inverse_transform(expected)).float(), atol=1e-4)
    assert x_hat.shape == X.shape
    # the MLPs add nothing yet, but their hidden layers are live, so training can move them
    assert float(model.embedding.weight.detach().abs().sum()) == 0.0
    assert float(model._output_layer().weight.detach().abs().sum()) == 0.0
    assert float(model.features[1].weight.detach().abs().sum()) > 0.0


def test_mlp_pca_with_fewer_training_vectors_than_latent_dimensions():
    X = torch.randn(2, 1, 1, 6)
    model = build_model("mlp_pca", input_shape=(1, 1, 6), latent_dim=4)
    model.init_from_training(X)
    w = model.linear_encoder.weight
    assert torch.all(w[2:] == 0) and torch.allclose(w[:2] @ w[:2].T, torch.eye(2), atol=1e-5)
    with torch.no_grad():
        assert torch.allclose(model.decode(model.encode(X)), X, atol=1e-5)  # two vectors: reconstructed exactly


