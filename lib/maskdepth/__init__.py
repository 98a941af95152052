"""maskdepth: predict the foreground mask and the depth map of an image.

The library follows the data flow:
sources (bg, fg) -> manifest of placements -> composed samples (image, mask, depth)
-> model -> losses/metrics -> checkpoints, TensorBoard, metrics JSON, grids -> predictions.
"""

__version__ = "0.1.0"


def predict(images, checkpoint, **kwargs):
    """Predict mask and depth for images (paths, PIL images or arrays). See `maskdepth.inference.predict`."""
    from maskdepth.inference import predict as _predict

    return _predict(images, checkpoint=checkpoint, **kwargs)
