"""Does a structure follow how the files were stored rather than how they sound?

Real libraries mix sources: telephone takes at 8 kHz among studio takes at 44.1 kHz, MP3s among
WAVs, stereo among mono. A file stored at 8 kHz holds nothing above 4 kHz, and a spectrum sees that
before it sees the sound: on 84 spoken words of which 10 were 8 kHz MP3s, the spectrogram,
descriptor and aisfx views split off those 10 (NMI 0.92 with the sample rate), a structure of the
collection's own making. Each structure's partition is compared with the files' recording traits
(stage 01's metadata, never the labels) by adjusted mutual information, the measure and threshold by
which two features' rows count as one structure. A structure that follows a trait is reported, not
removed: where each class comes from its own source, the trait is also the classes.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.metrics import adjusted_mutual_info_score

from audioclust.clustering.selection import noise_apart
from audioclust.clustering.structures import AGREEMENT_MAX_SAMPLES, agreement_rows

#: recording traits (columns of :func:`audioclust.results.read_recording_traits`) and their names in words
TRAITS: dict[str, str] = {"band": "band stored", "format": "file format", "channels": "channels"}


def traits_followed(partition: np.ndarray, traits: pd.DataFrame, threshold: float,
                    max_samples: int = AGREEMENT_MAX_SAMPLES) -> dict[str, float]:
    """The traits a partition agrees with: ``{trait: AMI}`` for those at ``threshold`` or above, strongest first.

    Parameters
    ----------
    partition : cluster labels, one per file (``-1`` = noise, each a singleton).
    traits : one row per file in the same order, a column per trait (:data:`TRAITS`); a trait with a single
        value, or a file without one, tells nothing and is left out.
    threshold : AMI from which the partition follows a trait (``cluster.structure_agreement``).
    max_samples : above this many files, the seeded sample the structures' agreement is measured on.
    """
    rows = agreement_rows(len(partition), max_samples)
    codes = noise_apart(np.asarray(partition)[rows])
    found = {}
    for trait in traits.columns:
        values = traits[trait].iloc[rows].reset_index(drop=True)
        known = values.notna().to_numpy()
        if values[known].nunique() < 2:
            continue
        ami = float(adjusted_mutual_info_score(values[known].astype(str), codes[known]))
        if ami >= threshold:
            found[trait] = ami
    return dict(sorted(found.items(), key=lambda item: -item[1]))


def follows_text(found: dict[str, float]) -> str:
    """``band stored 0.92; file format 0.41`` (the ``follows`` column of ``structures.csv``); "" for none."""
    return "; ".join(f"{TRAITS.get(trait, trait)} {ami:.2f}" for trait, ami in found.items())


def mark_followed_traits(structures: pd.DataFrame, partitions: dict[str, np.ndarray], traits: pd.DataFrame | None,
                         threshold: float) -> pd.DataFrame:
    """Set ``structures["follows"]``: for each structure, the recording traits its representative's partition
    follows (:func:`follows_text`); "" everywhere without traits."""
    structures["follows"] = [
        "" if traits is None or traits.empty or rep not in partitions
        else follows_text(traits_followed(partitions[rep], traits, threshold))
        for rep in structures["representative"]]
    return structures
