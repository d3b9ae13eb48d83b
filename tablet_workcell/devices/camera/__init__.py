"""The disintegration station's camera: frame sources (device, video file, network stream),
the calibration file, and an MJPEG-over-HTTP server (what IP cameras send) that the
simulated station uses to stream the twin's rendered frames."""
