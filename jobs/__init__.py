"""Example jobs for sweep: real training functions and the sweep files that drive them.

Import them from the repository root, e.g. ``objective: jobs.mlp:train`` in a sweep file:

>>> from jobs.mlp import train
>>> train({"lr": 0.01, "epochs": 1})["epochs"]
1
"""
