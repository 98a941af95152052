"""Pictures: the one depth-picture convention, grids of ground truth and predictions, training curves,
and previews of data.

Modules: depthviz, grids, preview, viz.
"""
