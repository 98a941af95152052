"""The synthetic world with exact labels: cameras, ray-traced shapes, textures, scene and object
families, the source tables and their cached views, placements, the per-stage manifest, the
composition of an object into its view and the traced objects packed on disk.

Modules: backgrounds, camera, composition, foregrounds, interiors, manifest, objects, placement,
shading, shapes, sources, textures.
"""
