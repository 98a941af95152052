"""maskdepth: predict the foreground mask and the depth map of an image.

The library follows the data flow:
sources (bg, fg) -> manifest of placements -> composed samples (image, mask, depth)
-> model -> losses/metrics -> checkpoints, TensorBoard, metrics JSON, grids -> predictions.
"""

__version__ = "0.1.0"


def load(checkpoint=None, **kwargs):
    """A reusable predictor: `maskdepth.load("outputs/1k").predict(images)` reads the checkpoint
    once. `checkpoint`: a file, a run folder, a stage folder (its newest passing run), or None
    (the newest passing run of the largest stage under outputs/). See `maskdepth.prediction.predictor.Predictor`."""
    from maskdepth.prediction.predictor import Predictor

    return Predictor(checkpoint, **kwargs)


def predict(images, checkpoint, **kwargs):
    """Predict mask and depth for images (paths, PIL images or arrays). See `maskdepth.prediction.predictor.predict`."""
    from maskdepth.prediction.predictor import predict as _predict

    return _predict(images, checkpoint=checkpoint, **kwargs)
