"""Low-rate surface EMG at 200 Hz (consumer armbands: Myo, the long-term sEMG armband, NinaPro DB5).

These recordings are sampled at 200 Hz, far below the EMG v1 spec's 1000 Hz; upsampling would invent
content above 100 Hz, so they get their own modality instead. All numbers are **proposals** (no published
NeuroRVQ model exists at this rate):

- patch 50 samples = 0.25 s, so the armband's 1.5 s segments are exactly 6 patches;
- four branches with kernels (15, 7), (9, 5), (5, 3), (3, 3) at 200 Hz (the EEG v1 kernels shifted towards
  short kernels, since sEMG energy at this rate lies between 20 Hz and Nyquist) and pools (2, 5):
  50 -> 25 -> 5 time steps, so D = 8 x 5 = 40, with 4 heads of 10;
- 8 RVQ levels of 8192 x 128, 256 temporal rows (64 s), vocabulary c1..c16 (EMG v1's, one name per electrode
  of one or two 8-electrode armbands);
- unit ``au``: armband devices report unitless, device-scaled values; they are passed through unscaled.

Why a signal of its own rather than EMG at another rate: it differs from ``emg`` in two signal fields, the rate
(200 vs 1000 Hz) and the unit (device units vs µV), so data of one can never meet a model of the other (the
compatibility check compares those fields); what it shares with EMG, the electrode vocabulary, it shares by value.
Its patch length and architecture are its own (this spec's NeuroRVQ default).
"""

from neurorvq.modalities.emg import EMG_CHANNELS_V1
from neurorvq.families.neurorvq import NeuroRVQConfig, TemporalBranch
from neurorvq.registry import ModalitySpec, register_modality

SEMG200_PREPROCESSING = (
    {"step": "PickChannels"}, {"step": "Notch", "freqs": [50.0, 60.0], "harmonics": False},
    {"step": "BandPass", "low": 20.0, "high": 95.0}, {"step": "Resample"},
)

SEMG200 = register_modality(
    ModalitySpec(
        name="semg200",
        sampling_rate=200.0,
        patch_length=50,
        channels=EMG_CHANNELS_V1,
        unit="au",
        bands=(("low", 20.0, 50.0), ("high", 50.0, 95.0)),
        preprocessing=SEMG200_PREPROCESSING,
        families={"neurorvq": NeuroRVQConfig(
            branches=(
                TemporalBranch(kernel_sizes=(15, 7), pools=(2, 5)),
                TemporalBranch(kernel_sizes=(9, 5), pools=(2, 5)),
                TemporalBranch(kernel_sizes=(5, 3), pools=(2, 5)),
                TemporalBranch(kernel_sizes=(3, 3), pools=(2, 5)),
            ),
            embed_dim=40,
            num_heads=4,
            n_quantizers=8,
            codebook_size=8192,
            code_dim=128,
            max_patches=256,
        )},
        doc="Low-rate surface EMG (200 Hz). PROPOSAL values throughout: patch 50 samples, kernels (15,7) (9,5) "
            "(5,3) (3,3) with pools (2,5), D 40, 4 heads, 8 x 8192 x 128, 256 temporal rows, unit au.",
    )
)
