"""EEG v1: the official NeuroRVQ configuration (method.md §2-§3, checkpoint ``NeuroRVQ_EEG_tokenizer_v1``).

Every number here is published (paper or official code); none is a proposal. The 104-name channel
vocabulary and its order are part of the checkpoint format (method.md §2.4): do not sort, extend or
alias it here; aliases such as T7/T3 belong in the data pipeline.
"""

from neurorvq.families.neurorvq import NeuroRVQConfig, TemporalBranch
from neurorvq.registry import ModalitySpec, register_modality

EEG_CHANNELS_V1: tuple[str, ...] = (
    "a1", "a2", "af3", "af4", "af7", "af8", "afz", "c1", "c2", "c3",
    "c4", "c5", "c6", "ccp1", "ccp2", "ccp3", "ccp4", "ccp5", "ccp6", "ccp7",
    "ccp8", "cfc1", "cfc2", "cfc3", "cfc4", "cfc5", "cfc6", "cfc7", "cfc8", "cp1",
    "cp2", "cp3", "cp4", "cp5", "cp6", "cpz", "cz", "eog", "f1", "f10",
    "f2", "f3", "f4", "f5", "f6", "f7", "f8", "f9", "fc1", "fc2",
    "fc3", "fc4", "fc5", "fc6", "fcz", "fp1", "fp2", "fpz", "ft7", "ft8",
    "fz", "iz", "loc", "o1", "o2", "oz", "p08", "p1", "p10", "p2",
    "p3", "p4", "p5", "p6", "p7", "p8", "p9", "po1", "po10", "po2",
    "po3", "po4", "po7", "po8", "po9", "poz", "pz", "roc", "sp1", "sp2",
    "t1", "t10", "t2", "t3", "t4", "t5", "t6", "t7", "t8", "t9",
    "tp10", "tp7", "tp8", "tp9",
)

# Branch order is the checkpoint's: kernel 21 first (">10 Hz", ">13 Hz", ">20 Hz", ">40 Hz" at 200 Hz).
EEG_BRANCHES: tuple[TemporalBranch, ...] = (
    TemporalBranch(kernel_sizes=(21, 9), pools=(2, 4)),
    TemporalBranch(kernel_sizes=(15, 7), pools=(2, 4)),
    TemporalBranch(kernel_sizes=(9, 5), pools=(2, 4)),
    TemporalBranch(kernel_sizes=(5, 3), pools=(2, 4)),
)

# The official example (method.md §2.3): notch 50/60 Hz, band-pass 0.5-44.5 Hz, clip ±500 µV, resample.
EEG_PREPROCESSING = (
    {"step": "PickChannels"}, {"step": "Notch", "freqs": [50.0, 60.0], "harmonics": False},
    {"step": "BandPass", "low": 0.5, "high": 44.5}, {"step": "Clip", "limit": 500.0}, {"step": "Resample"},
)

EEG = register_modality(
    ModalitySpec(
        name="eeg",
        sampling_rate=200.0,
        patch_length=200,
        channels=EEG_CHANNELS_V1,
        unit="uV",
        bands=(("delta", 0.5, 4.0), ("theta", 4.0, 8.0), ("alpha", 8.0, 13.0), ("beta", 13.0, 30.0),
               ("gamma", 30.0, 45.0)),
        preprocessing=EEG_PREPROCESSING,
        families={"neurorvq": NeuroRVQConfig(
            branches=EEG_BRANCHES,
            embed_dim=200,
            num_heads=10,
            n_quantizers=8,
            codebook_size=8192,
            code_dim=128,
            max_patches=256,
            encoder_depth=12,
            decoder_depth=3,
        )},
        doc="EEG v1, the official configuration (method.md §2-§3): 200 Hz, 1 s patches, 4 branches x 8 RVQ "
            "levels x 8192 codes of dim 128, 104-channel vocabulary in checkpoint order, input in microvolts.",
    )
)
