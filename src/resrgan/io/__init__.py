"""Image and video input/output.

``resrgan.io.images`` reads and writes images keeping bit depth, alpha, ICC profile and EXIF.
"""
