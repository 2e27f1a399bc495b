"""ECG v1 (method.md §8).

Sources: the Rust port / HF card of the upstream ``NeuroRVQ_ECG_v1.yml`` (not in the official mirror).
Published there: the 15-lead vocabulary, patch 40 samples, width D = 40, the EEG kernels, 8 RVQ levels of
8192 x 128. **Proposals** (no source gives them): the 200 Hz sampling rate (inferred from 600 tokens =
12 leads x 50 patches of a 10 s PTB-XL record), 600 temporal-embedding rows, 4 attention heads (D = 40 must
be divisible; the official head count is unknown), encoder/decoder depths 12/3, input unit mV, and the
band edges used for reports. Confirm against the official yml when it is released.
"""

from neurorvq.modalities.eeg import EEG_BRANCHES
from neurorvq.families.neurorvq import NeuroRVQConfig
from neurorvq.registry import ModalitySpec, register_modality

ECG_CHANNELS_V1: tuple[str, ...] = (
    "avf", "avl", "avr", "i", "ii", "iii", "v1", "v2", "v3", "v4", "v5", "v6", "vx", "vy", "vz",
)

ECG_PREPROCESSING = (
    {"step": "PickChannels"}, {"step": "Notch", "freqs": [50.0, 60.0], "harmonics": False},
    {"step": "BandPass", "low": 0.5, "high": 95.0}, {"step": "Resample"},
)

# Lead names of other conventions (MIT-BIH "MLII", Einthoven "D2", "lead II") -> the vocabulary's.
ECG_ALIASES = {"mlii": "ii", "mli": "i", "mliii": "iii", "d1": "i", "d2": "ii", "d3": "iii", "lead i": "i",
               "lead ii": "ii", "lead iii": "iii"}

ECG = register_modality(
    ModalitySpec(
        name="ecg",
        sampling_rate=200.0,
        patch_length=40,
        channels=ECG_CHANNELS_V1,
        unit="mV",
        bands=(("baseline", 0.5, 5.0), ("qrs_low", 5.0, 15.0), ("qrs_high", 15.0, 40.0), ("high", 40.0, 95.0)),
        preprocessing=ECG_PREPROCESSING,
        aliases=ECG_ALIASES,
        families={"neurorvq": NeuroRVQConfig(
            branches=EEG_BRANCHES,
            embed_dim=40,
            num_heads=4,
            n_quantizers=8,
            codebook_size=8192,
            code_dim=128,
            max_patches=600,
        )},
        doc="ECG v1 (method.md §8). PROPOSAL values: sampling_rate 200 Hz, max_patches 600, num_heads 4, "
            "depths 12/3, unit mV, bands. Published: vocabulary, patch 40, D 40, kernels, 8 x 8192 x 128.",
    )
)
