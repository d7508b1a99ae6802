"""aiSFX: a CNN trained on sound-effects libraries (Ma & Lerch, ISMIR 2022); 512-d per ~2.3 s block.

The weights ship in the ``aisfx`` wheel (``aisfx/models/checkpoint.pth``; code MIT, model
CC BY 4.0). The input is the package's librosa path, reproduced exactly: the signal at
44.1 kHz scaled to peak 1, a 96-band power mel spectrogram (n_fft 2048, hop 1024, HTK mels
0-22050 Hz with unit-sum filters), ``log10(10000 x + 1)``, divided by the paper's maximum
9.4578 ("original" min-max normalisation), cut into blocks of 100 frames every 50 frames
(the last partial block dropped; a file shorter than one block is zero-padded to one).

Two departures from the package's own loop, neither changing a number it gets right:
its librosa spectrogram is ``(mels, frames)``, which ``model_get_embedding`` would cut along
the mel axis; the network reads ``(frames, mels)`` (its docstring, and the layout of the
package's Essentia path), so the spectrogram is transposed. And the package refuses files of
50 frames or fewer (an assertion in ``compute_hopSize``); here they become one padded block.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import aisfx
import librosa
import numpy as np
import torch
from aisfx.models.cnn2d import EmbeddingNet
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

from audioclust.embed.base import NetworkModel
from audioclust.embed.spec import ModelSpec

SAMPLE_RATE = 44100
N_FFT = 2048
HOP_LENGTH = 1024
N_MELS = 96
F_MIN, F_MAX = 0.0, 22050.0
#: the "original" normalisation: the range of all spectrograms of the paper's datasets
NORM_MIN, NORM_MAX = 0.0, 9.457798957824707
BLOCK_FRAMES = 100
BLOCK_HOP = 50  # half a block, the package's default emb_hop_size 0.5
DIM = 512

WEIGHTS = Path(aisfx.__file__).resolve().parent / "models" / "checkpoint.pth"


class AisfxModel(NetworkModel):
    """The aiSFX embedding network (``EmbeddingNet('max', 3, 1, 64)``, the X-Sequential-CE weights).

    Parameters
    ----------
    spec : ModelSpec
        ``type`` ``"aisfx"``; ``batch_size`` is blocks per forward pass.
    device : torch.device

    Notes
    -----
    One frame per block: ``n_frames = max(1, (T - 100) // 50 + 1)`` with
    ``T = 1 + n_samples // 1024`` spectrogram frames; :attr:`hop_seconds` is 50 * 1024 / 44100.
    On a CPU, batching blocks saves little (the convolutions dominate); on a GPU it is what
    keeps the device busy.
    """

    def __init__(self, spec: ModelSpec, device: torch.device) -> None:
        super().__init__(spec, device, _load_network(), sample_rate=SAMPLE_RATE, dim=DIM,
                         hop_seconds=BLOCK_HOP * HOP_LENGTH / SAMPLE_RATE)

    def inputs(self, signals: list[np.ndarray]) -> list[np.ndarray]:
        """The blocks of each signal (at 44.1 kHz): arrays of shape (n_blocks, 100, 96)."""
        return [blocks_of(spectrogram(y)) for y in signals]


def spectrogram(y: np.ndarray) -> np.ndarray:
    """The network's input features of one signal (the package's librosa spectrogram, normalised).

    Parameters
    ----------
    y : ndarray of shape (n_samples,), float32 at 44.1 kHz.

    Returns
    -------
    ndarray of shape (1 + n_samples // 1024, 96), float32: frames by mel bands, about 0..1.
    """
    peak = np.max(np.abs(y))
    if peak > 0:
        y = y / peak
    with warnings.catch_warnings():  # a signal shorter than n_fft is fine: it is zero-padded to one block
        warnings.filterwarnings("ignore", message="n_fft=.* is too large", category=UserWarning)
        mel = librosa.feature.melspectrogram(y=y, sr=SAMPLE_RATE, n_fft=N_FFT, hop_length=HOP_LENGTH,
                                             win_length=N_FFT, n_mels=N_MELS, fmin=F_MIN, fmax=F_MAX,
                                             htk=True, norm=1.0, power=2.0)
    compressed = np.log10(mel * 10000.0 + 1)
    return ((compressed - NORM_MIN) / (NORM_MAX - NORM_MIN)).T.astype(np.float32)


def blocks_of(spec: np.ndarray) -> np.ndarray:
    """Cut a spectrogram into the network's blocks (the package's ``blocking`` with drop_partial_block).

    Parameters
    ----------
    spec : ndarray of shape (T, 96).

    Returns
    -------
    ndarray of shape (max(1, (T - 100) // 50 + 1), 100, 96), float32; rows past T are zeros.
    """
    n_blocks = max(1, (len(spec) - BLOCK_FRAMES) // BLOCK_HOP + 1)
    padded = np.zeros(((n_blocks - 1) * BLOCK_HOP + BLOCK_FRAMES, spec.shape[1]), dtype=np.float32)
    kept = min(len(spec), len(padded))
    padded[:kept] = spec[:kept]
    return np.stack([padded[i * BLOCK_HOP:i * BLOCK_HOP + BLOCK_FRAMES] for i in range(n_blocks)])


def _load_network() -> EmbeddingNet:
    """The embedding part of the package's checkpoint, loaded without unpickling code, made for inference.

    The checkpoint is ``(state_dict, ds_dict)``; ``ds_dict`` holds numpy int64 scalars, so the
    weights-only unpickler is allowed exactly numpy's scalar constructor, ``dtype`` and the
    int64 dtype class. Only ``embedding_net.*`` is kept (the classifier heads are unused) and
    loaded strictly. Then each batch norm is folded into the convolution before it (the same
    affine map in eval mode: outputs agree to ~1e-5) and the weights are stored channels-last;
    both save memory passes over the activations, which cost about a third of the CPU time.
    """
    # numpy 2 moved numpy.core to numpy._core; the pickle names the old path, so take the
    # constructor from a scalar's own reduce and register it under that name
    scalar = np.int64(0).__reduce__()[0]
    allowed = [(scalar, "numpy.core.multiarray.scalar"), np.dtype, type(np.dtype(np.int64))]
    with torch.serialization.safe_globals(allowed):
        state, _ = torch.load(WEIGHTS, map_location="cpu", weights_only=True)
    prefix = "embedding_net."
    net = EmbeddingNet("max", 3, 1, 64)
    net.load_state_dict({k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}, strict=True)
    net.eval()
    for block in (net.conv_block1, net.conv_block2, net.conv_block3, net.conv_block4):
        block.conv1, block.bn1 = fuse_conv_bn_eval(block.conv1, block.bn1), nn.Identity()
        block.conv2, block.bn2 = fuse_conv_bn_eval(block.conv2, block.bn2), nn.Identity()
    return net.to(memory_format=torch.channels_last)
