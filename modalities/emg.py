"""EMG v1 (method.md §8).

Sources: the Rust port / HF card of the upstream ``NeuroRVQ_EMG_v1.yml`` (not in the official mirror).
Published there: 1000 Hz, patch 200 samples (0.2 s), the 16-channel vocabulary (sorted as strings), kernels
51/25, 17/9, 8/4, 5/3 (the even kernels of branch 3 give 201 -> 100 and 101 -> 25 samples after pooling),
16 RVQ levels per branch, 8192 x 128 codes. **Proposals**: ``max_patches`` 256 (unknown: check the yml),
10 heads, depths 12/3, input unit uV, and the report bands.
"""

from neurorvq.families.neurorvq import NeuroRVQConfig, TemporalBranch
from neurorvq.registry import ModalitySpec, register_modality

EMG_CHANNELS_V1: tuple[str, ...] = tuple(sorted(f"c{i}" for i in range(1, 17)))

EMG_PREPROCESSING = (
    {"step": "PickChannels"}, {"step": "Notch", "freqs": [50.0, 60.0]}, {"step": "BandPass", "low": 20.0, "high": 450.0},
    {"step": "Resample"},
)

EMG = register_modality(
    ModalitySpec(
        name="emg",
        sampling_rate=1000.0,
        patch_length=200,
        channels=EMG_CHANNELS_V1,
        unit="uV",
        bands=(("low", 20.0, 60.0), ("mid", 60.0, 150.0), ("high", 150.0, 450.0)),
        preprocessing=EMG_PREPROCESSING,
        families={"neurorvq": NeuroRVQConfig(
            branches=(
                TemporalBranch(kernel_sizes=(51, 25), pools=(2, 4)),
                TemporalBranch(kernel_sizes=(17, 9), pools=(2, 4)),
                TemporalBranch(kernel_sizes=(8, 4), pools=(2, 4)),
                TemporalBranch(kernel_sizes=(5, 3), pools=(2, 4)),
            ),
            embed_dim=200,
            num_heads=10,
            n_quantizers=16,
            codebook_size=8192,
            code_dim=128,
            max_patches=256,
        )},
        doc="EMG v1 (method.md §8). PROPOSAL values: max_patches 256, num_heads 10, depths 12/3, unit uV, "
            "bands. Published: 1000 Hz, patch 200, vocabulary c1..c16, kernels, 16 levels x 8192 x 128.",
    )
)
