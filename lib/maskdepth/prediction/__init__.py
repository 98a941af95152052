"""Predicting any image with a checkpoint: the `Predictor`, its fast inference, the batch file job of
`maskdepth predict`, previews, edge-aware upsampling and ONNX export.

Modules: export, files, predictor, preview, speed, upsample.
"""
