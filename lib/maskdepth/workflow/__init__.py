"""The staged workflow: stages run as papermill notebooks with resume, their kernels, interrupts and
summary.md, notebooks stored clean, the ablation and the loss lab, the README's expectations and the
machine report (`maskdepth doctor`).

Modules: ablation, expectations, interrupts, loss_lab, nbclean, notebooks, pipeline, profile,
summary.
"""
