"""Names shared by the config schema and the code that implements them (one list each)."""

#: Time-frequency features that stage 03 computes.
FEATURE_KINDS: tuple[str, ...] = ("spectrogram", "mel", "chroma", "mfcc", "mfcc_no_c0")

#: Per-file normalisations of a feature array (:func:`audioclust.dsp.images.normalise_per_file`).
PER_FILE_MODES: tuple[str, ...] = ("none", "peak", "mean", "meanvar")

#: Criteria that estimate the number of clusters (:mod:`audioclust.clustering.kselect`).
K_METHODS: tuple[str, ...] = ("elbow", "silhouette", "davies_bouldin", "calinski_harabasz", "gap")

#: Pretrained embedding models whose weights ship in their pip wheels (:mod:`audioclust.embed`).
SHIPPED_EMBEDDINGS: tuple[str, ...] = ("aisfx", "resemblyzer")

#: Kinds of embedding model: the shipped ones, and a user's local checkpoint of each format.
EMBEDDING_TYPES: tuple[str, ...] = SHIPPED_EMBEDDINGS + ("huggingface", "torchscript", "onnx")

#: Stage 05's autoencoders of an embedding view (:mod:`audioclust.deep.components`), the image ones take images.
EMBEDDING_ARCHITECTURES: tuple[str, ...] = ("mlp", "mlp_pca")

#: How an embedding's frames become one vector per file (:func:`audioclust.embed.pooling.pool_frames`).
EMBEDDING_POOLINGS: tuple[str, ...] = ("mean", "meanstd", "max")

#: What each feature and shipped model mainly encodes, in words (the report's structures).
FEATURE_MEANINGS: dict[str, str] = {
    "spectrogram": "spectrum",
    "mel": "spectral shape",
    "mfcc": "spectral envelope (timbre, level)",
    "mfcc_no_c0": "spectral envelope (timbre)",
    "chroma": "pitch class",
    "descriptors": "loudness, brightness, rhythm",
    "aisfx": "sound events (pretrained)",
    "resemblyzer": "voice (pretrained speaker model)",
}
