"""The torch Datasets and the dataset folders: the dispatcher (`build_dataset`, `model_input`), the
steps every Dataset shares, a stage composed on the fly, the folder contract and its two layouts,
imports of existing sets, real photos labelled by a teacher or with measured depth, and a stage's
data prepared.

Modules: datadir, dataset, files, folder_dataset, import_decode, import_source, importer, materialize,
measured, packed, prepare, real, samples, synthetic, teacher.
"""
