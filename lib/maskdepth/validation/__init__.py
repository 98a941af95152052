"""A checkpoint judged: metrics.json and grids per split, the real-photo check, and the stage gate.

Modules: gate, realcheck, validate.
"""
