"""pebbles: checkpointing schedules and pebble games for reverse-mode AD.

Implements the pebble games of Liu & Xu, "Automatic differentiation in physics
simulation" (appendix: reversible and checkpoint games, Algorithms 2 and 3),
an in-place variant (Griewank's Revolve setting), optimal schedules for all
three games, exact optima and a simulator that checks every schedule.

Examples
--------
>>> import pebbles
>>> r = pebbles.simulate(pebbles.treeverse(1000, 10), 1000, "checkpoint", budget=10)
>>> r.forward_steps == pebbles.min_forward_steps(1000, 10, "checkpoint")
True
"""

from ._background import PRICES, background_time, background_two_level
from ._baselines import periodic, recompute_all, store_all
from ._bennett import (
    bennett,
    bennett_gradient,
    bennett_pebbles,
    bennett_steps,
    reversible_gradient,
)
from ._budget import min_pebbles
from ._chain import (
    hetero_brute_force,
    hetero_min_memory,
    hetero_optimal,
    hetero_time,
    sequential_segments,
)
from ._errors import (
    IllegalMoveError,
    InfeasibleBudgetError,
    PebblesError,
    PebblesNotImplementedError,
    PebblesTypeError,
    PebblesValueError,
)
from ._executor import CallbackError, NonFiniteError, ReplayResult, replay
from ._lowering import (
    OP_DISCARD,
    OP_FREE,
    OP_LOAD,
    OP_PAINT,
    OP_SEED,
    OP_STEP,
    OP_STORE,
    OP_TAPE,
    SlotProgram,
    lower,
)
from ._moves import (
    Game,
    Move,
    MoveKind,
    as_encoded,
    decode,
    discard,
    encode,
    format_move,
    forward,
    load,
    move,
    paint,
    parse_move,
    place,
    remove,
    store,
    tape,
    unplace,
)
from ._online import OnlineScheduler, UntilResult, online, online_r2_range, replay_until
from ._optimal import (
    BRUTE_FORCE_MAX_BOARDS,
    DP_MAX_CELLS,
    DP_MAX_N,
    brute_force,
    dp_table,
    min_forward_steps,
)
from ._planner import (
    BACKGROUND_MAX_N,
    EXECUTOR_EXTRA_STATES,
    Candidate,
    Plan,
    budget_for,
    plan,
)
from ._registry import (
    Method,
    Schedule,
    candidates,
    describe,
    fewest_moves,
    gradient_methods,
    methods,
    most_moves,
    predicted_steps,
    schedule,
)
from ._reversible import reversible_min_steps, reversible_optimal
from ._rules import RULE_NAMES
from ._simulator import Board, ChainCosts, SimulationResult, expand, simulate
from ._storage import (
    CACHE_SPEED,
    MAP_BYTES,
    PROBE_BYTES,
    DiskFullError,
    DiskStore,
    IOCost,
    MemoryStore,
    Store,
    StoreError,
    mapped_empty,
    measure_io,
)
from ._tradeoff import S_CAP as TRADEOFF_S_CAP
from ._tradeoff import X_MAX, memory_ratio, online_overhead, tradeoff_curves
from ._treeverse import paper_tau, treeverse, treeverse_paper
from ._twolevel import (
    BEST_PERIOD_MAX_N,
    TWO_LEVEL_MAX_ENTRIES,
    TWO_LEVEL_MAX_WORK,
    best_period,
    min_total_time,
    periodic_disk,
    periodic_disk_time,
    two_level,
    two_level_steps,
)

__all__ = [
    "BACKGROUND_MAX_N",
    "BEST_PERIOD_MAX_N",
    "BRUTE_FORCE_MAX_BOARDS",
    "CACHE_SPEED",
    "DP_MAX_CELLS",
    "DP_MAX_N",
    "MAP_BYTES",
    "PRICES",
    "PROBE_BYTES",
    "RULE_NAMES",
    "TWO_LEVEL_MAX_ENTRIES",
    "TWO_LEVEL_MAX_WORK",
    "hetero_brute_force",
    "hetero_min_memory",
    "hetero_optimal",
    "hetero_time",
    "sequential_segments",
    "TRADEOFF_S_CAP",
    "X_MAX",
    "memory_ratio",
    "online_overhead",
    "tradeoff_curves",
    "OnlineScheduler",
    "UntilResult",
    "online",
    "online_r2_range",
    "replay_until",
    "EXECUTOR_EXTRA_STATES",
    "DiskFullError",
    "DiskStore",
    "IOCost",
    "MemoryStore",
    "Store",
    "StoreError",
    "background_time",
    "background_two_level",
    "best_period",
    "mapped_empty",
    "measure_io",
    "min_total_time",
    "periodic_disk",
    "periodic_disk_time",
    "two_level",
    "two_level_steps",
    "OP_DISCARD",
    "OP_FREE",
    "OP_LOAD",
    "OP_PAINT",
    "OP_SEED",
    "OP_STEP",
    "OP_STORE",
    "OP_TAPE",
    "Board",
    "CallbackError",
    "Candidate",
    "ChainCosts",
    "Game",
    "IllegalMoveError",
    "InfeasibleBudgetError",
    "Move",
    "Method",
    "MoveKind",
    "NonFiniteError",
    "PebblesError",
    "PebblesNotImplementedError",
    "PebblesTypeError",
    "PebblesValueError",
    "Plan",
    "ReplayResult",
    "Schedule",
    "SimulationResult",
    "SlotProgram",
    "as_encoded",
    "bennett",
    "bennett_gradient",
    "bennett_pebbles",
    "bennett_steps",
    "brute_force",
    "budget_for",
    "candidates",
    "decode",
    "describe",
    "gradient_methods",
    "discard",
    "dp_table",
    "encode",
    "expand",
    "format_move",
    "forward",
    "load",
    "lower",
    "min_forward_steps",
    "methods",
    "min_pebbles",
    "fewest_moves",
    "most_moves",
    "move",
    "paint",
    "paper_tau",
    "parse_move",
    "periodic",
    "place",
    "plan",
    "predicted_steps",
    "recompute_all",
    "remove",
    "replay",
    "reversible_gradient",
    "reversible_min_steps",
    "reversible_optimal",
    "schedule",
    "simulate",
    "store",
    "store_all",
    "tape",
    "treeverse",
    "treeverse_paper",
    "unplace",
]

# The public exceptions show as ``pebbles.NAME`` in tracebacks and reprs, and pickle
# finds them there.
for _error in (CallbackError, DiskFullError, IllegalMoveError, InfeasibleBudgetError,
               NonFiniteError, PebblesError, PebblesNotImplementedError, PebblesTypeError,
               PebblesValueError, StoreError):
    _error.__module__ = __name__
del _error

__version__ = "0.1.0"
