"""``agent.runners.draws``: seeded, reproducible uniform draws without ``numpy.random``."""

from __future__ import annotations

import subprocess
import sys

import numpy as np

from agent.runners.draws import Draws


def test_the_same_seed_gives_the_same_values_and_another_seed_others() -> None:
    first, again, other = Draws(7), Draws(7), Draws(8)
    a = first.unit((4, 5))
    assert a.shape == (4, 5) and a.dtype == np.float64
    np.testing.assert_array_equal(a, again.unit((4, 5)))
    assert not np.array_equal(a, other.unit((4, 5)))
    # successive calls continue the sequence instead of repeating it
    assert not np.array_equal(first.unit((4, 5)), a)


def test_unit_values_are_in_range_and_spread() -> None:
    values = Draws(0).unit((100_000,))
    assert values.min() >= 0.0 and values.max() < 1.0
    assert abs(values.mean() - 0.5) < 0.01
    counts, _ = np.histogram(values, bins=10, range=(0.0, 1.0))
    assert counts.min() > 9_000 and counts.max() < 11_000


def test_integers_include_both_ends_and_nothing_outside() -> None:
    values = Draws(3).integers(-2, 2, (10_000,))
    assert values.dtype == np.int64
    assert set(np.unique(values).tolist()) == {-2, -1, 0, 1, 2}
    assert (Draws(3).integers(5, 5, (3,)) == 5).all()


def test_uniform_choice_and_scalars() -> None:
    draws = Draws(1)
    floats = draws.uniform(-3.0, 3.0, (1000,))
    assert floats.min() >= -3.0 and floats.max() < 3.0
    picked = draws.choice(np.asarray([8000, 16000]), (1000,))
    assert set(np.unique(picked).tolist()) == {8000, 16000}
    scalar = draws.unit(())
    assert scalar.shape == () and 0.0 <= float(scalar) < 1.0
    # 0-d arrays, never numpy scalars: runtimes refuse a numpy scalar as an input
    for value in (draws.uniform(0.0, 1.0, ()), draws.integers(0, 9, ()), picked[:0]):
        assert isinstance(value, np.ndarray)
    assert isinstance(draws.choice(np.asarray([1, 2]), ()), np.ndarray)
    assert draws.unit((0, 3)).shape == (0, 3)


def test_drawing_never_loads_numpy_random() -> None:
    """The point of the module: a serving agent that draws a warm-up set keeps
    ``numpy.random`` (~3 MB resident) out of its process."""
    code = (
        "import sys\n"
        "from agent.runners.draws import Draws\n"
        "from agent.runners.base import TensorSignature\n"
        "from agent.runners.inputs import input_sets\n"
        "import numpy as np\n"
        "sig = TensorSignature('x', np.dtype('float32'), (None, 8))\n"
        "input_sets([sig], count=3)\n"
        "Draws(1).integers(0, 9, (4,))\n"
        "print('numpy.random' in sys.modules)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False"
