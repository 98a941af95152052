"""A checkpoint judged: metrics.json, predictions and figures per split (scored, drawn, read back for
notebooks), the real-photo check, and the stage gate.

Modules: gate, readout, realcheck, scoring, split_figures, validate.
"""
