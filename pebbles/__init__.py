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

from ._baselines import (
    periodic as periodic,
)
from ._baselines import (
    recompute_all as recompute_all,
)
from ._baselines import (
    store_all as store_all,
)
from ._bennett import (
    bennett as bennett,
)
from ._bennett import (
    bennett_gradient as bennett_gradient,
)
from ._bennett import (
    bennett_pebbles as bennett_pebbles,
)
from ._bennett import (
    reversible_gradient as reversible_gradient,
)
from ._budget import min_pebbles as min_pebbles
from ._errors import (
    IllegalMoveError as IllegalMoveError,
)
from ._errors import (
    InfeasibleBudgetError as InfeasibleBudgetError,
)
from ._errors import (
    PebblesError as PebblesError,
)
from ._errors import (
    PebblesTypeError as PebblesTypeError,
)
from ._errors import (
    PebblesValueError as PebblesValueError,
)
from ._executor import (
    CallbackError as CallbackError,
)
from ._executor import (
    NonFiniteError as NonFiniteError,
)
from ._executor import (
    ReplayResult as ReplayResult,
)
from ._executor import (
    replay as replay,
)
from ._moves import (
    Game as Game,
)
from ._moves import (
    Move as Move,
)
from ._moves import (
    MoveKind as MoveKind,
)
from ._moves import (
    decode as decode,
)
from ._moves import (
    encode as encode,
)
from ._moves import (
    format_move as format_move,
)
from ._moves import (
    forward as forward,
)
from ._moves import (
    move as move,
)
from ._moves import (
    paint as paint,
)
from ._moves import (
    parse_move as parse_move,
)
from ._moves import (
    place as place,
)
from ._moves import (
    remove as remove,
)
from ._moves import (
    unplace as unplace,
)
from ._optimal import (
    brute_force as brute_force,
)
from ._optimal import (
    dp_table as dp_table,
)
from ._optimal import (
    min_forward_steps as min_forward_steps,
)
from ._planner import (
    Candidate as Candidate,
)
from ._planner import (
    Plan as Plan,
)
from ._planner import (
    bennett_steps as bennett_steps,
)
from ._planner import (
    plan as plan,
)
from ._reversible import (
    reversible_min_steps as reversible_min_steps,
)
from ._reversible import (
    reversible_optimal as reversible_optimal,
)
from ._simulator import (
    Board as Board,
)
from ._simulator import (
    SimulationResult as SimulationResult,
)
from ._simulator import (
    expand as expand,
)
from ._simulator import (
    simulate as simulate,
)
from ._treeverse import (
    paper_tau as paper_tau,
)
from ._treeverse import (
    treeverse as treeverse,
)
from ._treeverse import (
    treeverse_paper as treeverse_paper,
)

__version__ = "0.1.0"
