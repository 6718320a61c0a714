"""Memory levels of the heterogeneous-chain optimum (exact units of whole-byte sizes, a
limit between multiples of their divisor, the error when rounding loses a schedule) and
the input checks of :class:`pebbles.ChainCosts`."""

from __future__ import annotations

import numpy as np
import pytest

import pebbles
from pebbles import (
    ChainCosts,
    hetero_brute_force,
    hetero_min_memory,
    hetero_optimal,
    hetero_time,
    min_forward_steps,
)


def test_a_limit_between_multiples_of_the_sizes_is_the_multiple_below():
    """Sizes of 1 byte: 13.5 bytes hold 13 states, so the time is that of 13 bytes."""
    unit = ChainCosts(np.ones(15), np.zeros(15), np.ones(16))
    assert hetero_time(unit, 13) == min_forward_steps(15, 13) == 15.0
    assert hetero_time(unit, 13.5) == hetero_time(unit, 13.999) == 15.0
    assert list(hetero_optimal(unit, 13.5)) == list(hetero_optimal(unit, 13))


def test_more_memory_is_never_slower_for_whole_byte_sizes():
    """Sizes multiples of 1000 bytes: every limit from 40000 to 41000 takes at most the
    time of 40000, and 41000 at most that of 40999."""
    rng = np.random.default_rng(0)
    n = 30
    costs = ChainCosts(rng.integers(1, 10, n).astype(float), np.ones(n),
                       1000.0 * rng.integers(1, 5, n + 1))
    times = [hetero_time(costs, m) for m in (40000, 40500, 40999, 41000)]
    assert times[:3] == [times[0]] * 3
    assert times[3] <= times[2]


def test_a_rounded_limit_is_floored_to_the_divisor_first(monkeypatch):
    """Past the levels and the size guard, the quantum is memory / levels of the limit
    floored to a multiple of the sizes' divisor (1000 bytes): 40999 bytes at 39 levels
    round like 40000 (21000 bytes: 21 units of 40000 / 39, not 20 of 40999 / 39)."""
    from pebbles import _chain

    monkeypatch.setattr(_chain, "_levels_fit", lambda n, uniform: 0)
    sizes = np.array([0.0, 21000, 1000, 1000])
    below, above = (_chain._quantum(sizes, m, 39) for m in (40000.0, 40999.0))
    assert above.mmax == below.mmax == 39 and not above.exact
    assert above.units.tolist() == below.units.tolist() == [0, 21, 1, 1]
    assert above.pairs.tolist() == below.pairs.tolist()
    costs = ChainCosts(np.array([1.0, 5, 1]), np.ones(3), sizes)
    assert hetero_time(costs, 40999, levels=39) == hetero_time(costs, 40000, levels=39)


def test_whole_byte_sizes_are_exact_at_a_levels_that_counts_their_units():
    """One huge layer among small ones: rounded to the default 100 levels the optimum is
    lost (207); at levels=1000001, one byte a level, it is the exhaustive search's."""
    costs = ChainCosts(np.array([1.0, 0, 100, 0, 1]), np.array([0.0, 1, 0, 1, 1]),
                       np.array([1e6, 1, 1e6, 1, 1e6, 1]))
    assert hetero_time(costs, 1000001) == 207.0
    assert hetero_time(costs, 1000001, levels=1000001) == hetero_brute_force(
        costs, 1000001) == 105.0


def _held_chain(scale: float) -> ChainCosts:
    """A chain whose least memory with held gradients is one byte (at ``scale`` 1) above
    what an exact count finishes with."""
    return ChainCosts(np.array([1.0, 0, 100, 100]), np.array([0.0, 0, 50, 1]),
                      scale * np.array([0.0, 1, 1000, 0, 1]),
                      grads=scale * np.array([2.0, 3, 0, 2]))


def test_whole_byte_sizes_below_the_least_memory_name_the_exact_levels():
    costs = _held_chain(1.0)
    assert 1002 < hetero_min_memory(costs)
    with pytest.raises(pebbles.PebblesValueError,
                       match=r"levels=1002 counts these whole-byte sizes exactly"):
        hetero_time(costs, 1002)
    assert hetero_time(costs, 1002, levels=1002) == hetero_brute_force(costs, 1002) == 153.0


def test_a_schedule_lost_to_rounding_is_blamed_on_the_levels():
    """Sizes of 1.5 bytes at levels=100: rounded up to 15.03, nothing fits under 1503; the
    error names the rounding and a larger levels= before the exhaustive search, and
    levels=1002 (quantum 1.5) finds the optimum."""
    costs = _held_chain(1.5)
    with pytest.raises(pebbles.PebblesValueError,
                       match=r"rounded up to multiples of memory / levels = 15\.03 bytes "
                             r"\(levels=100\).*pass a larger levels=.*not whole numbers.*"
                             r"hetero_brute_force"):
        hetero_time(costs, 1503)
    assert hetero_time(costs, 1503, levels=1002) == hetero_brute_force(costs, 1503) == 153.0


def test_the_rounding_error_names_the_exact_levels_past_the_guard(monkeypatch):
    """Whole-byte sizes whose exact units pass the size guard: the error names them."""
    from pebbles import _chain

    monkeypatch.setattr(_chain, "_levels_fit", lambda n, uniform: 500)
    with pytest.raises(pebbles.PebblesValueError,
                       match=r"up to levels=500 .*levels=1002 would count these whole-byte "
                             r"sizes exactly, but passes the size guard"):
        hetero_time(_held_chain(1.0), 1002)


@pytest.mark.parametrize("value, why", [
    ([10**400, 1, 1], r"forward\[0\] \(about 1e400\) is past the largest float.*rescale"),
    ([1, -10**309, 1], r"forward\[1\] \(about 1e309\) is past the largest float.*rescale"),
])
def test_an_integer_past_the_largest_float_is_refused(value, why):
    with pytest.raises(pebbles.PebblesValueError, match=why):
        ChainCosts(value, np.ones(3), np.ones(4))


@pytest.mark.parametrize("value", [
    [True, 1, 1], (1, 2, np.True_), [1.0, False, 2.0],
])
def test_bools_in_a_list_are_refused(value):
    with pytest.raises(pebbles.PebblesTypeError, match=r"ChainCosts.forward=.*holds bools"):
        ChainCosts(value, np.ones(3), np.ones(4))


@pytest.mark.parametrize("value", [
    np.array(["2020-01-01"] * 3, dtype="datetime64[D]"),
    np.array([1, 2, 3], dtype="timedelta64[s]"),
])
def test_dates_and_durations_are_refused(value):
    with pytest.raises(pebbles.PebblesTypeError,
                       match=r"ChainCosts.sizes=.*holds dates or durations"):
        ChainCosts(np.ones(2), np.ones(2), value)


def test_a_masked_array_with_masked_entries_is_refused():
    masked = np.ma.masked_array([1.0, 1e9, 1.0], [0, 1, 0])
    with pytest.raises(pebbles.PebblesTypeError,
                       match=r"ChainCosts.forward is a masked array.*forward.filled\(value\)"
                             r".*forward.compressed\(\)"):
        ChainCosts(masked, np.ones(3), np.ones(4))
    plain = ChainCosts(np.ma.masked_array([1.0, 2.0, 3.0]), np.ones(3), np.ones(4))
    assert plain.forward.tolist() == [1.0, 2.0, 3.0]
