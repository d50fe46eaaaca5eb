"""Seeded draws for generated inputs, without ``numpy.random``.

The inputs warm-up, the health gate and the accuracy guard run a model on only need to be
plausible and reproducible (the same seed gives the same arrays), not statistically
strong. ``numpy.random`` is loaded on first use of ``np.random`` and cost a serving agent
3.2 MB of RSS (122.7 -> 119.5 MB serving ``tiny-mlp`` on onnxruntime without it; 6.6 MB in
a fresh process, which it also makes load ``hashlib``/``secrets``), kept for the life of
the process although a restored model draws one warm-up set. ``Draws`` is SplitMix64
(Steele, Lea and Flood 2014: the seeding generator of Java's ``SplittableRandom`` and of
xoshiro) over a counter, vectorised in numpy's ``uint64`` arithmetic (which wraps, as the
algorithm needs): each value is a pure function of (seed, position), so no state but a
counter is kept. Each 64-bit output gives two 32-bit values: a 1x3x640x640 float set takes
~18 ms against numpy's PCG64's ~8 ms (measured on the dev box), a few input sets per
selection.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np

_GOLDEN = 0x9E3779B97F4A7C15
_MIX1 = 0xBF58476D1CE4E5B9
_MIX2 = 0x94D049BB133111EB
_MASK = (1 << 64) - 1


def _mix(z: np.ndarray) -> np.ndarray:
    """SplitMix64's finaliser over a ``uint64`` array (in place where it can)."""
    import numpy as np

    z ^= z >> np.uint64(30)
    z *= np.uint64(_MIX1)
    z ^= z >> np.uint64(27)
    z *= np.uint64(_MIX2)
    z ^= z >> np.uint64(31)
    return z


class Draws:
    """Uniform draws from a seed; successive calls continue the same sequence."""

    def __init__(self, seed: int) -> None:
        # the seed goes through the finaliser too, so seeds 0, 1, 2 start far apart
        self._base = int(_mix_int(seed & _MASK))
        self._next = 0

    def _bits(self, count: int) -> np.ndarray:
        """``count`` 32-bit values: the two halves of ``ceil(count / 2)`` SplitMix64
        outputs (half the mixing of one output per value)."""
        import numpy as np

        pairs = (count + 1) // 2
        state = np.arange(self._next, self._next + pairs, dtype=np.uint64)
        self._next += pairs
        state *= np.uint64(_GOLDEN)  # uint64 arrays wrap, as SplitMix64 needs
        state += np.uint64(self._base)
        return _mix(state).view(np.uint32)[:count]

    def unit(self, shape: Sequence[int]) -> np.ndarray:
        """Float64 values uniform in [0, 1) of ``shape`` (32 random bits each: plenty for
        model inputs, and half the work of 53)."""
        import numpy as np

        count = int(np.prod(shape, dtype=np.int64)) if len(shape) else 1
        values = self._bits(count).astype(np.float64)
        values *= 1.0 / (1 << 32)
        return values.reshape(tuple(shape))

    def uniform(self, low: float, high: float, shape: Sequence[int]) -> np.ndarray:
        """Floats uniform in [low, high)."""
        import numpy as np

        # np.asarray: arithmetic on a 0-d array gives a numpy scalar, which runtimes refuse
        return np.asarray(low + (high - low) * self.unit(shape))

    def integers(self, low: int, high: int, shape: Sequence[int]) -> np.ndarray:
        """Integers uniform in [low, high] (both ends included), as int64."""
        import numpy as np

        span = high - low + 1
        picked = np.floor(self.unit(shape) * span).astype(np.int64)
        return np.asarray(np.minimum(picked, span - 1) + low)

    def choice(self, values: np.ndarray, shape: Sequence[int]) -> np.ndarray:
        """Elements of the 1-D ``values``, each picked uniformly."""
        import numpy as np

        return np.asarray(values[self.integers(0, len(values) - 1, shape)])


def _mix_int(value: int) -> int:
    """SplitMix64's finaliser on one Python int (exact, no numpy scalar overflow warning)."""
    z = value
    z = ((z ^ (z >> 30)) * _MIX1) & _MASK
    z = ((z ^ (z >> 27)) * _MIX2) & _MASK
    return z ^ (z >> 31)
