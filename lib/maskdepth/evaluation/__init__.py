"""How a model is scored: the losses, the metric catalogue (the one home of every metric), the dataset-
accumulated meters, Markdown tables, the loop that scores a split, and where the error lives.

Modules: breakdown, catalogue, loop, losses, metrics, tables.
"""
