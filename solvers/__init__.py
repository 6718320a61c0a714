"""Example simulations differentiated with :mod:`pebbles` (Liu & Xu,
"Automatic differentiation in physics simulation", section 4).

* :mod:`solvers.lorenz` -- the Lorenz experiment of section 4.1 (RK4, forward
  mode, reverse mode through checkpoint schedules, adjoint-state method).

Submodules are not imported here, so ``import solvers`` does not load Numba.
"""
