"""Deterministic synthetic biosignals: the framework's embedded default data (no downloads, no MNE).

One generator per modality, each a physiologically shaped model rather than white noise, so that a tokenizer
trained or evaluated on it meets the structure it will meet in real recordings (1/f backgrounds, rhythms in
bursts, spatial correlation, heart beats with realistic morphology and variability, gesture bursts):

* :func:`synth_eeg` [uV]: 1/f^1..2 background mixed from a few spatially smooth sources plus local noise; theta,
  alpha (strongest, posterior when channel names are given) and beta rhythms as narrow-band noise gated by
  smooth bursts with random onsets and durations; small 50 Hz line noise; small DC offsets.
* :func:`synth_ecg` [mV]: a 3-D cardiac dipole built from P, Q, R, S, T Gaussians per beat (after McSharry's
  ECGSYN, timed in seconds from each R peak, QT scaled with sqrt(RR)), heart rate 55-95 bpm with respiratory
  sinus arrhythmia (~0.25 Hz), a ~0.1 Hz LF modulation and jitter; electrode potentials (RA, LA, LL, V1-V6) with
  baseline wander, noise and optional line noise, from which the 12 standard leads are derived exactly as an
  electrocardiograph does (so III = II - I, aVR = -(I+II)/2, aVL = I - II/2, aVF = II - I/2 hold exactly) and
  the Frank leads vx, vy, vz (the dipole components: x left, y inferior, z anterior).
* :func:`synth_emg` [uV]: an armband of electrodes; gestures (0.3-2 s, smooth ramps, random spatial patterns
  around the arm, force fluctuations) gate band-limited noise with a surface-EMG spectrum (20-450 Hz, clipped
  below Nyquist: 20-95 Hz at 200 Hz) smoothed across neighbouring electrodes; baseline noise; optional line noise.

Every generator has the signature ``gen(n_channels, n_samples, fs, rng, channels=None) -> float32 [C, T]``;
:func:`generate` picks one by modality name and seeds it from ``(seed, index)`` so window ``index`` of a data
set is the same array on every machine, worker and run.
"""

from __future__ import annotations

import functools
import re
from typing import Callable, Sequence

import numpy as np

from neurorvq.errors import ConfigError
from neurorvq.registry import ModalitySpec, get_modality

Generator = Callable[..., np.ndarray]
LINE_FREQUENCY = 50.0  # [Hz]

_UNIT_PER_VOLT = {"v": 1.0, "mv": 1e3, "uv": 1e6, "µv": 1e6, "μv": 1e6, "nv": 1e9}


# ----------------------------------------------------------------------------------------------- helpers
def _check_sizes(n_channels: int, n_samples: int, fs: float) -> tuple[int, int, float]:
    if int(n_channels) < 1:
        raise ConfigError(f"n_channels is {n_channels}; give at least 1 channel")
    if int(n_samples) < 1:
        raise ConfigError(f"n_samples is {n_samples}; give at least 1 sample")
    if not fs > 0:
        raise ConfigError(f"fs is {fs}; give the sampling rate in Hz, > 0")
    return int(n_channels), int(n_samples), float(fs)


def _standardise(x: np.ndarray) -> np.ndarray:
    """Rows to zero mean and unit standard deviation (all-zero rows stay zero)."""
    x = x - x.mean(axis=-1, keepdims=True)
    std = x.std(axis=-1, keepdims=True)
    return x / np.where(std > 0, std, 1.0)


def _spectral_noise(rng: np.random.Generator, amplitude: np.ndarray, n: int) -> np.ndarray:
    """Gaussian noise ``[R, n]`` whose rows have amplitude spectra ``amplitude [R, n // 2 + 1]``, unit std each."""
    rows, bins = amplitude.shape
    coeffs = rng.standard_normal((rows, 2 * bins)).view(np.complex128)  # independent real and imaginary parts
    return _standardise(np.fft.irfft(coeffs * amplitude, n))


def _pink_amplitude(f: np.ndarray, exponent: np.ndarray, f_min: float = 0.5) -> np.ndarray:
    """Amplitude spectra ``[R, F]`` of 1/f^exponent noise (power), flat below ``f_min`` Hz, no DC."""
    a = np.maximum(f, f_min)[None, :] ** (-exponent / 2.0)
    a[:, 0] = 0.0
    return a


def _peak_amplitude(f: np.ndarray, f0: np.ndarray, bandwidth: float) -> np.ndarray:
    """Amplitude spectra ``[R, F]`` with a Gaussian peak at ``f0 [R, 1]`` (std ``bandwidth`` Hz): a waxing rhythm."""
    return np.exp(-0.5 * ((f[None, :] - f0) / bandwidth) ** 2)


def _band_amplitude(f: np.ndarray, low: float, high: float, rows: int) -> np.ndarray:
    """Flat amplitude spectra ``[rows, F]`` on ``low < f < high``."""
    return np.broadcast_to(((f > low) & (f < high)).astype(float), (rows, f.size))


def _raised_cosine(w: np.ndarray) -> np.ndarray:
    """0 -> 1 smooth ramp of ``w`` clipped to [0, 1]."""
    return 0.5 * (1.0 - np.cos(np.pi * np.clip(w, 0.0, 1.0)))


def _burst_envelope(rng: np.random.Generator, rows: int, n: int, fs: float, rate: float,
                    duration: tuple[float, float], floor: float) -> np.ndarray:
    """Smooth on/off envelopes ``[rows, n]`` in [floor, 1]: Poisson bursts (``rate`` per second) with random
    onsets, durations in ``duration`` [s], amplitudes 0.6-1 and raised-cosine ramps of a quarter burst."""
    counts = rng.poisson(rate * (n / fs + duration[1]), rows)
    total = int(counts.sum())
    onsets = rng.uniform(-duration[1], n / fs, (total, 1))
    durations = rng.uniform(duration[0], duration[1], (total, 1))
    amps = rng.uniform(0.6, 1.0, (total, 1))
    u = (np.arange(n)[None, :] / fs - onsets) / durations                      # [bursts, n]
    shapes = amps * _raised_cosine(np.minimum(u, 1.0 - u) / 0.25)
    envelope = np.zeros((rows, n))
    for row, (start, stop) in enumerate(zip(np.cumsum(counts) - counts, np.cumsum(counts))):
        if stop > start:
            envelope[row] = shapes[start:stop].max(axis=0)
    return floor + (1.0 - floor) * envelope


def _line_noise(rng: np.random.Generator, rows: int, n: int, fs: float, amplitude: float) -> np.ndarray:
    """50 Hz mains pick-up ``[rows, n]`` (common phase, per-row gains 0.5-1.5); zero if 50 Hz >= Nyquist."""
    if not LINE_FREQUENCY < fs / 2 or amplitude <= 0:
        return np.zeros((rows, n))
    arg = 2 * np.pi * LINE_FREQUENCY * np.arange(n) / fs
    phase = rng.uniform(0, 2 * np.pi) + rng.normal(0, 0.1, (rows, 1))
    gains = amplitude * np.sqrt(2.0) * rng.uniform(0.5, 1.5, (rows, 1))
    # sin(a + p) = sin(a) cos(p) + cos(a) sin(p): two 1-D sines instead of a [rows, n] one
    return (gains * np.cos(phase)) * np.sin(arg)[None, :] + (gains * np.sin(phase)) * np.cos(arg)[None, :]


def _names(channels: Sequence[str] | None, n_channels: int) -> list[str] | None:
    if channels is None:
        return None
    names = [str(c).strip().lower() for c in channels]
    if len(names) != n_channels:
        raise ConfigError(f"channels lists {len(names)} names but n_channels is {n_channels}; give one name per "
                          "channel or leave channels out")
    return names


# ---------------------------------------------------------------------------------------------------- EEG
# Approximate scalp positions (x: left -1 .. right +1, y: posterior -1 .. anterior +1) from 10-20/10-10 names.
_EEG_ROW = {"fp": 0.95, "af": 0.75, "f": 0.5, "ft": 0.25, "fc": 0.25, "cfc": 0.12, "c": 0.0, "t": 0.0,
            "ccp": -0.12, "cp": -0.25, "tp": -0.25, "p": -0.55, "po": -0.75, "o": -0.92, "i": -1.0, "sp": 0.3}
_EEG_SPECIAL = {"t3": (-0.9, 0.0), "t4": (0.9, 0.0), "t5": (-0.75, -0.55), "t6": (0.75, -0.55),
                "t1": (-0.8, 0.25), "t2": (0.8, 0.25), "a1": (-1.0, -0.1), "a2": (1.0, -0.1),
                "loc": (-0.55, 1.0), "roc": (0.55, 1.0), "eog": (0.0, 1.0)}
_EEG_NAME = re.compile(r"^([a-z]+?)(z|\d+)$")


def _grid_position(i: int, n_channels: int) -> tuple[float, float]:
    """Position of channel ``i`` when names are unknown: a grid filled front-to-back in channel order."""
    cols = int(np.ceil(np.sqrt(n_channels)))
    rows = int(np.ceil(n_channels / cols))
    row, col = divmod(i, cols)
    return (-1 + 2 * col / max(cols - 1, 1), 1 - 2 * row / max(rows - 1, 1))


def eeg_positions(channels: Sequence[str] | None, n_channels: int) -> np.ndarray:
    """Approximate 2-D scalp positions ``[C, 2]`` (x left->right, y back->front, both in [-1, 1]).

    Parsed from 10-20/10-10 names (``fp1`` front-left, ``oz`` back-centre, old ``t3..t6`` included); unknown
    names, or no names at all, fall back to a grid in channel order so neighbouring indices stay neighbours.
    """
    names = _names(channels, n_channels)
    return _eeg_positions(tuple(names) if names else None, n_channels).copy()


@functools.lru_cache(maxsize=64)
def _eeg_positions(names: tuple[str, ...] | None, n_channels: int) -> np.ndarray:
    pos = np.empty((n_channels, 2))
    for i in range(n_channels):
        name = names[i] if names else ""
        match = _EEG_NAME.match(name)
        if name in _EEG_SPECIAL:
            pos[i] = _EEG_SPECIAL[name]
        elif match and match.group(1) in _EEG_ROW:
            number = match.group(2)
            x = 0.0 if number == "z" else min(1.0, 0.2 * np.ceil(int(number) / 2)) * (1 if int(number) % 2 == 0
                                                                                        else -1)
            pos[i] = (x, _EEG_ROW[match.group(1)])
        else:
            pos[i] = _grid_position(i, n_channels)
    return pos


def _spatial_gain(pos: np.ndarray, centres: np.ndarray, width: float) -> np.ndarray:
    """Gaussian fall-off ``[C, S]`` of sources at ``centres [S, 2]`` seen from channels at ``pos [C, 2]``."""
    d2 = ((pos[:, None, :] - centres[None, :, :]) ** 2).sum(-1)
    return np.exp(-d2 / (2.0 * width ** 2))


def synth_eeg(n_channels: int, n_samples: int, fs: float, rng: np.random.Generator,
              channels: Sequence[str] | None = None) -> np.ndarray:
    """Synthetic scalp EEG, float32 ``[n_channels, n_samples]`` in microvolts.

    Background: ``ceil(C/3)`` (>= 3) 1/f^1..2 sources at random scalp positions, mixed with a smooth Gaussian
    spatial kernel, plus 20-40 % local 1/f noise per channel, scaled to 10-16 uV (+-15 % per channel). Rhythms
    (narrow-band noise gated by smooth bursts): alpha 8.5-11.5 Hz, 14-25 uV at its two sources (posterior
    when ``channels`` names are given, otherwise anywhere), long bursts (1-4 s); theta 4.5-7 Hz, 2.5-5 uV
    (fronto-central with names); beta 15-25 Hz, 2-5 uV (left/right central with names), short bursts
    (0.15-0.6 s). Plus 50 Hz line noise of 1-3 uV RMS (only if 50 Hz is below Nyquist) and DC offsets of
    a few uV.
    """
    c, n, fs = _check_sizes(n_channels, n_samples, fs)
    names = _names(channels, c)
    pos = eeg_positions(names, c)

    # Rhythm sources: (frequency range, per-source spread, bandwidth [Hz], amplitude [uV], centres, spatial width,
    # spatial floor, bursts per second, burst durations [s]). Centres are scalp positions when names are known.
    jitter = lambda k: rng.uniform(-0.15, 0.15, (k, 2))  # noqa: E731
    if names is not None:
        centres = (np.array([[-0.35, -0.8], [0.35, -0.8]]) + jitter(2), np.array([[0.0, 0.35]]) + jitter(1),
                   np.array([[-0.45, 0.0], [0.45, 0.0]]) + jitter(2))
    else:
        centres = (rng.uniform(-1, 1, (2, 2)), rng.uniform(-1, 1, (1, 2)), rng.uniform(-1, 1, (2, 2)))
    rhythms = (((8.5, 11.5), 0.3, 0.6, (14.0, 25.0), centres[0], 0.6, 0.25, 0.4, (1.0, 4.0)),   # alpha
               ((4.5, 7.0), 0.0, 0.8, (2.5, 5.0), centres[1], 0.7, 0.3, 0.3, (0.5, 2.0)),      # theta
               ((15.0, 25.0), 1.0, 2.5, (2.0, 5.0), centres[2], 0.5, 0.2, 1.0, (0.15, 0.6)))   # beta

    # One FFT block for every noise source: shared 1/f sources, local 1/f noise, rhythm carriers.
    f = np.fft.rfftfreq(n, 1.0 / fs)
    n_src = max(3, int(np.ceil(c / 3)))
    spectra = [_pink_amplitude(f, rng.uniform(1.0, 2.0, (n_src + c, 1)))]
    for f_range, spread, bandwidth, *_ in rhythms:
        k = 1 if spread == 0 else 2
        spectra.append(_peak_amplitude(f, rng.uniform(*f_range) + rng.uniform(-spread, spread, (k, 1)), bandwidth))
    noise = _spectral_noise(rng, np.concatenate(spectra), n)

    mix = _spatial_gain(pos, rng.uniform(-1, 1, (n_src, 2)), rng.uniform(0.5, 0.8))
    mix /= np.linalg.norm(mix, axis=1, keepdims=True)
    local_fraction = rng.uniform(0.2, 0.4)
    background = (np.sqrt(1 - local_fraction) * _standardise(mix @ noise[:n_src])
                  + np.sqrt(local_fraction) * noise[n_src:n_src + c])
    x = background * (rng.uniform(10.0, 16.0) * rng.uniform(0.85, 1.15, (c, 1)))

    row = n_src + c
    for _, _, _, amp_range, centre, width, floor, rate, duration in rhythms:
        k = centre.shape[0]
        sources = noise[row:row + k] * _burst_envelope(rng, k, n, fs, rate, duration, floor=0.3)
        gain = (floor + (1 - floor) * _spatial_gain(pos, centre, width)) * rng.uniform(*amp_range, (1, k))
        x += gain @ sources
        row += k

    x += _line_noise(rng, c, n, fs, rng.uniform(1.0, 3.0))
    x += rng.normal(0.0, 3.0, (c, 1))
    return x.astype(np.float32)


# ---------------------------------------------------------------------------------------------------- ECG
# Axes: x towards the patient's left, y inferior (feet), z anterior (chest). Einthoven-triangle electrode
# positions chosen so that I = LA - RA = d_x and II = LL - RA = d . (cos 60, sin 60, 0); their sum is zero so
# the Wilson central terminal carries no dipole signal.
_LIMB_ELECTRODES = np.array([[-0.5, -0.5 / np.sqrt(3), 0.0],   # RA
                             [0.5, -0.5 / np.sqrt(3), 0.0],    # LA
                             [0.0, 1.0 / np.sqrt(3), 0.0]])    # LL
# Precordial electrodes: angle in the transverse plane from +x (left) towards +z (anterior), slightly inferior,
# with gains > 1 because the chest electrodes sit closer to the heart.
_V_ANGLES = np.deg2rad([120.0, 95.0, 75.0, 55.0, 30.0, 0.0])
_V_GAINS = np.array([1.2, 1.6, 1.6, 1.5, 1.3, 1.0])
_PRECORDIAL = _V_GAINS[:, None] * np.stack([np.cos(_V_ANGLES), np.full(6, 0.1), np.sin(_V_ANGLES)], axis=1)

# Waves (after McSharry et al. 2003, timed from the R peak): dipole amplitude [mV] along (x, y, z), time
# offset [s] and width [s]; P is placed by the PR interval and T by sqrt(RR) (Bazett-like QT).
_WAVES = ("p", "q", "r", "s", "t")
_WAVE_DIPOLE = np.array([[0.08, 0.12, 0.02],     # P: left-inferior
                         [-0.15, 0.05, 0.35],    # Q: septal, left-to-right and anterior (r in V1, q in I)
                         [0.80, 0.70, -0.45],    # R: main left-inferior-posterior force (R in V5-6, S in V1-2)
                         [-0.20, -0.20, -0.15],  # S: late right-superior-posterior force (s in I, V5-6)
                         [0.25, 0.20, 0.12]])    # T: concordant with R
_WAVE_SIGMA = np.array([0.025, 0.008, 0.011, 0.009, 0.05])

ECG_LEADS: tuple[str, ...] = ("i", "ii", "iii", "avr", "avl", "avf", "v1", "v2", "v3", "v4", "v5", "v6",
                              "vx", "vy", "vz")


def _rotation(rng: np.random.Generator, max_degrees: tuple[float, float, float]) -> np.ndarray:
    """Random rotation about x, y and z by up to ``max_degrees`` each (electrical-axis variability)."""
    ax, ay, az = (np.deg2rad(rng.uniform(-m, m)) for m in max_degrees)
    rx = np.array([[1, 0, 0], [0, np.cos(ax), -np.sin(ax)], [0, np.sin(ax), np.cos(ax)]])
    ry = np.array([[np.cos(ay), 0, np.sin(ay)], [0, 1, 0], [-np.sin(ay), 0, np.cos(ay)]])
    rz = np.array([[np.cos(az), -np.sin(az), 0], [np.sin(az), np.cos(az), 0], [0, 0, 1]])
    return rz @ ry @ rx


def _rr_intervals(rng: np.random.Generator, duration: float) -> tuple[np.ndarray, np.ndarray, float]:
    """R-peak times [s] covering ``[-0.7, duration + 0.5]``, their RR intervals [s] and the respiration rate [Hz].

    RR_k = RR0 * (1 + a_rsa sin(2 pi f_resp t_k + .) + a_lf sin(2 pi f_lf t_k + .)) + N(0, (0.01 RR0)^2) with
    HR0 = 55-95 bpm, f_resp 0.2-0.3 Hz, a_rsa 3-6 %, f_lf 0.08-0.12 Hz, a_lf 1-4 %.
    """
    rr0 = 60.0 / rng.uniform(55.0, 95.0)
    f_resp, f_lf = rng.uniform(0.2, 0.3), rng.uniform(0.08, 0.12)
    a_rsa, a_lf = rng.uniform(0.03, 0.06), rng.uniform(0.01, 0.04)
    start = -0.7 - rng.uniform(0.0, rr0)
    k = np.arange(int(np.ceil((duration + 1.5 + rr0) / (0.85 * rr0))) + 2)
    t_approx = start + k * rr0
    rr = rr0 * (1 + a_rsa * np.sin(2 * np.pi * f_resp * t_approx + rng.uniform(0, 2 * np.pi))
                + a_lf * np.sin(2 * np.pi * f_lf * t_approx + rng.uniform(0, 2 * np.pi)))
    rr += rng.normal(0.0, 0.01 * rr0, rr.shape)
    peaks = start + np.concatenate([[0.0], np.cumsum(rr[:-1])])
    keep = peaks < duration + 0.5
    return peaks[keep], rr[keep], f_resp


def synth_ecg(n_channels: int, n_samples: int, fs: float, rng: np.random.Generator,
              channels: Sequence[str] | None = None) -> np.ndarray:
    """Synthetic 12-lead (+ Frank) ECG, float32 ``[n_channels, n_samples]`` in millivolts.

    ``channels`` picks leads by name from :data:`ECG_LEADS` (``i, ii, iii, avr, avl, avf, v1..v6, vx, vy,
    vz``, case-insensitive); without names the first ``n_channels`` of that order are returned. Per window:
    heart rate 55-95 bpm with RSA/LF variability (see :func:`_rr_intervals`), electrical axis rotated by up to
    +-20 deg (frontal) / 15 / 10 deg, wave amplitudes scaled 0.8-1.2 per wave and 0.9-1.3 overall (3 %
    beat-to-beat), respiration modulating the dipole by +-5 %, baseline wander < 0.5 Hz of 0.03-0.15 mV per
    electrode, 5-20 uV electrode noise and, in half the windows, 50 Hz pick-up that mostly cancels in the
    differential leads.
    """
    c, n, fs = _check_sizes(n_channels, n_samples, fs)
    names = _names(channels, c) or list(ECG_LEADS[:c])
    if c > len(ECG_LEADS) and channels is None:
        raise ConfigError(f"n_channels={c} but the synthetic ECG has {len(ECG_LEADS)} leads {list(ECG_LEADS)}; "
                          "ask for fewer or name them")
    unknown = [name for name in names if name not in ECG_LEADS]
    if unknown:
        raise ConfigError(f"ECG lead(s) {unknown} are not generated; choose from {list(ECG_LEADS)}")

    duration = n / fs
    t = np.arange(n) / fs
    peaks, rr, f_resp = _rr_intervals(rng, duration)
    n_beats = peaks.size

    # Per-window morphology: rotated dipole directions, scaled amplitudes, PR interval, QT scaling.
    dipoles = (_WAVE_DIPOLE * rng.uniform(0.8, 1.2, (len(_WAVES), 1))) @ _rotation(rng, (10.0, 15.0, 20.0)).T
    dipoles *= rng.uniform(0.9, 1.3)
    offsets = np.empty((n_beats, len(_WAVES)))
    offsets[:, 0] = -rng.uniform(0.12, 0.16)                      # P peak: PR interval minus half a P wave
    offsets[:, 1:4] = [-0.022, 0.0, 0.024]                         # Q, R, S
    offsets[:, 4] = rng.uniform(0.27, 0.32) * np.sqrt(rr)          # T peak ~ QT - 0.1 s, QT ~ 0.4 sqrt(RR)
    sigmas = np.broadcast_to(_WAVE_SIGMA * rng.uniform(0.9, 1.15, len(_WAVES)), (n_beats, len(_WAVES))).copy()
    sigmas[:, 4] *= np.sqrt(rr)
    beat_amps = rng.normal(1.0, 0.03, (n_beats, len(_WAVES)))

    # Each beat only touches [-0.45 s, +0.8 s] around its R peak: evaluate the Gaussians there and scatter-add.
    local = np.arange(int(np.floor(-0.45 * fs)), int(np.ceil(0.8 * fs)) + 1)
    idx = np.round(peaks * fs).astype(np.int64)[:, None] + local[None, :]              # [B, L]
    dt = idx / fs - peaks[:, None]                                                   # [B, L]
    g = np.exp(-0.5 * ((dt[:, None, :] - offsets[..., None]) / sigmas[..., None]) ** 2)  # [B, W, L]
    contrib = np.einsum("bwl,bw,wk->kbl", g, beat_amps, dipoles)                    # [3, B, L]
    valid = (idx >= 0) & (idx < n)
    dipole = np.stack([np.bincount(idx[valid], weights=contrib[k][valid], minlength=n) for k in range(3)])
    dipole *= 1 + 0.05 * np.sin(2 * np.pi * f_resp * t + rng.uniform(0, 2 * np.pi))  # respiration, [3, n]

    # Electrode potentials: RA, LA, LL, V1..V6 = dipole projection + wander + noise + mains.
    electrodes = np.concatenate([_LIMB_ELECTRODES, _PRECORDIAL]) @ dipole            # [9, n]
    f = np.fft.rfftfreq(n, 1.0 / fs)
    wander_spectrum = (f[None, :] > 0) * (f[None, :] < 0.5) / np.maximum(f, 0.05)[None, :]  # < 0.5 Hz, ~1/f
    wander = _spectral_noise(rng, np.repeat(wander_spectrum, 9, axis=0), n)
    resp = np.sin(2 * np.pi * f_resp * t + rng.uniform(0, 2 * np.pi))
    electrodes += rng.uniform(0.03, 0.15) * (0.6 * wander + 0.8 * rng.uniform(-1, 1, (9, 1)) * resp)
    electrodes += rng.normal(0.0, rng.uniform(0.005, 0.02), (9, n))
    if rng.random() < 0.5:
        electrodes += _line_noise(rng, 1, n, fs, rng.uniform(0.05, 0.3)) * rng.uniform(0.9, 1.1, (9, 1))

    ra, la, ll = electrodes[:3]
    lead_i, lead_ii = la - ra, ll - ra
    wilson = (ra + la + ll) / 3.0
    leads = {"i": lead_i, "ii": lead_ii, "iii": lead_ii - lead_i, "avr": -(lead_i + lead_ii) / 2,
             "avl": lead_i - lead_ii / 2, "avf": lead_ii - lead_i / 2}
    for j in range(6):
        leads[f"v{j + 1}"] = electrodes[3 + j] - wilson
    if any(name in ("vx", "vy", "vz") for name in names):
        frank = dipole + 0.5 * rng.uniform(0.03, 0.15) * _spectral_noise(
            rng, np.repeat(wander_spectrum, 3, axis=0), n)
        frank += rng.normal(0.0, 0.01, (3, n))
        leads.update(vx=frank[0], vy=frank[1], vz=frank[2])
    return np.stack([leads[name] for name in names]).astype(np.float32)


# ---------------------------------------------------------------------------------------------------- EMG
def _emg_band(fs: float) -> tuple[float, float]:
    """Surface-EMG pass band [Hz]: 20-450 Hz, the top clipped 5 Hz below Nyquist (20-95 Hz at 200 Hz)."""
    high = min(450.0, fs / 2 - 5.0) if fs > 60 else 0.45 * fs
    return min(20.0, high / 2), high


def synth_emg(n_channels: int, n_samples: int, fs: float, rng: np.random.Generator,
              channels: Sequence[str] | None = None) -> np.ndarray:
    """Synthetic surface EMG from an armband, float32 ``[n_channels, n_samples]`` in microvolts.

    Channels sit evenly around the forearm in the given order (names only set the count). Gestures alternate
    with rest (active 0.3-2 s, rest 0.3-1.5 s); each gesture has a random spatial pattern (one or two Gaussian
    lobes around the arm, 40-250 uV RMS at the peak electrode, 10 % spill to all), raised-cosine on/off ramps of
    50-200 ms and +-12 % force fluctuation (0.3-3 Hz). The carrier is band-limited noise with the Shwedyk
    surface-EMG spectrum (f_l 40-70 Hz, f_h 100-150 Hz) inside :func:`_emg_band`, smoothed over neighbouring
    electrodes; on top: 1-3 uV white baseline noise and, in half the windows, 1-5 uV of 50 Hz.
    """
    c, n, fs = _check_sizes(n_channels, n_samples, fs)
    _names(channels, c)
    t = np.arange(n) / fs
    f = np.fft.rfftfreq(n, 1.0 / fs)
    angles = 2 * np.pi * np.arange(c) / c

    def angular_gain(centre: np.ndarray, width: np.ndarray) -> np.ndarray:  # [C, G]
        d = np.angle(np.exp(1j * (angles[:, None] - centre[None, :])))
        return np.exp(-0.5 * (d / width[None, :]) ** 2)

    # Gesture timeline: alternate rest/active segments from a random phase.
    on, off = [], []
    time, active = -rng.uniform(0.0, 2.0), rng.random() < 0.5
    while time < n / fs:
        length = rng.uniform(0.3, 2.0) if active else rng.uniform(0.3, 1.5)
        if active:
            on.append(time)
            off.append(time + length)
        time += length
        active = not active
    g = len(on)
    envelope = np.zeros((c, n))
    if g:
        on_, off_ = np.array(on)[:, None], np.array(off)[:, None]
        ramp = rng.uniform(0.05, 0.2, (g, 1))
        shapes = _raised_cosine(np.minimum(t[None, :] - on_, off_ - t[None, :]) / ramp)       # [G, n]
        centres, widths = rng.uniform(0, 2 * np.pi, g), rng.uniform(0.5, 1.2, g)
        pattern = angular_gain(centres, widths)
        second = rng.random(g) < 0.5
        pattern += second * rng.uniform(0.3, 0.8, g) * angular_gain(centres + rng.uniform(0.6 * np.pi, 1.4 * np.pi, g),
                                                                    rng.uniform(0.5, 1.2, g))
        pattern = (pattern / pattern.max(axis=0, keepdims=True) + 0.1) * rng.uniform(40.0, 250.0, g)
        envelope = pattern @ shapes
        fluctuation = _spectral_noise(rng, _band_amplitude(f, 0.3, 3.0, c), n)
        envelope *= np.clip(1 + 0.12 * fluctuation, 0.0, None)

    low, high = _emg_band(fs)
    f_l, f_h = rng.uniform(40.0, 70.0), rng.uniform(100.0, 150.0)

    psd = f ** 2 * f_h ** 4 / ((f ** 2 + f_l ** 2) * (f ** 2 + f_h ** 2) ** 2)  # Shwedyk et al. 1977
    carrier = _spectral_noise(rng, np.broadcast_to(np.sqrt(psd) * ((f >= low) & (f <= high)), (c, f.size)), n)
    d = np.angle(np.exp(1j * (angles[:, None] - angles[None, :])))
    smooth = np.exp(-0.5 * (d / (rng.uniform(0.6, 1.0) * 2 * np.pi / max(c, 8))) ** 2)
    smooth /= np.linalg.norm(smooth, axis=1, keepdims=True)
    x = envelope * (smooth @ carrier)
    x += rng.normal(0.0, rng.uniform(1.0, 3.0), (c, n))
    if rng.random() < 0.5:
        x += _line_noise(rng, c, n, fs, rng.uniform(1.0, 5.0))
    return x.astype(np.float32)


# ------------------------------------------------------------------------------------------------ registry
GENERATORS: dict[str, Generator] = {"eeg": synth_eeg, "ecg": synth_ecg, "emg": synth_emg}
"""Modality name -> generator ``gen(n_channels, n_samples, fs, rng, channels=None) -> float32 [C, T]``."""

GENERATOR_UNITS: dict[str, str] = {"eeg": "uV", "ecg": "mV", "emg": "uV"}
"""Unit each generator natively produces; :func:`generate` rescales to ``spec.unit`` when they differ."""


def generate(modality_spec: ModalitySpec | str, channels: Sequence[str], n_samples: int, seed: int,
             index: int) -> np.ndarray:
    """Window ``index`` of the synthetic data set ``seed``: float32 ``[len(channels), n_samples]`` in ``spec.unit``.

    The generator is ``GENERATORS[spec.name]`` at ``spec.sampling_rate``, seeded with
    ``np.random.default_rng([seed, index])``: the same (seed, index) gives the same array everywhere.
    """
    spec = get_modality(modality_spec)
    generator = GENERATORS.get(spec.name)
    if generator is None:
        raise ConfigError(f"no synthetic generator for modality '{spec.name}'; available: {sorted(GENERATORS)}. "
                          "Add one to neurorvq.data.synthetic.GENERATORS (and GENERATOR_UNITS) or use real data")
    if int(seed) < 0 or int(index) < 0:
        raise ConfigError(f"seed ({seed}) and index ({index}) must be >= 0")
    native = GENERATOR_UNITS.get(spec.name, spec.unit).lower()
    target = spec.unit.lower()
    if native != target and not (native in _UNIT_PER_VOLT and target in _UNIT_PER_VOLT):
        raise ConfigError(f"modality '{spec.name}' has unit '{spec.unit}' but the synthetic generator makes "
                          f"'{GENERATOR_UNITS[spec.name]}'; use one of {sorted(_UNIT_PER_VOLT)}")
    names = [str(ch) for ch in channels]
    rng = np.random.default_rng([int(seed), int(index)])
    x = generator(len(names), int(n_samples), float(spec.sampling_rate), rng, channels=names)
    if native != target:
        x = x * np.float32(_UNIT_PER_VOLT[target] / _UNIT_PER_VOLT[native])
    return np.ascontiguousarray(x, dtype=np.float32)


__all__ = ["ECG_LEADS", "GENERATORS", "GENERATOR_UNITS", "eeg_positions", "generate", "synth_ecg", "synth_eeg",
           "synth_emg"]
