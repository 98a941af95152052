"""What a run will do before it starts: the stage table (sizes, training defaults, gates) and the
machine rules (precision, workers, batch and lr fitted to memory).

Modules: machine, stages.
"""
