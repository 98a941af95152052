"""What every layer depends on: user errors, atomic file writes and locks, the device and its
precision, progress bars, the depth parameterisation, safe image reading, flags made from
dataclasses, the files the package ships and its cache, run folders (names, `latest`, checkpoint
resolution) and the runtime's provenance.

Modules: depth, device, environment, errors, fileio, imageio, params, progress, resources, runs.
"""
