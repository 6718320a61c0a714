"""Drawing pebble games, trade-off plots and solver figures (matplotlib).

Not implemented yet: see the visualize issue. Importing this package is cheap
and imports no matplotlib.
"""
