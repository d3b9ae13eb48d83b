"""Camera-based disintegration analysis (no ROS): frames in, masks, measurements, regimes and fits out.

Layers, each usable on its own and tested without a ROS graph:

- ``frames``: checks a frame before anything trusts it (empty, black, wrong size or
  encoding) and names the problem in a :class:`~tablet_workcell.vision.types.FrameStatus`.
- ``segmentation``: the ONNX U-Net (onnxruntime only) and the classical OpenCV baseline,
  both behind the :class:`~tablet_workcell.vision.types.Segmenter` protocol.
- ``model_card``: the shipped model's card (data, metrics, input contract, SHA-256).
- ``measurement``: droplet area, base width, height, contact angle and tablet height from
  a label map and the pixel scale.
- ``pipeline``: one frame in, one :class:`~tablet_workcell.vision.types.FrameAnalysis` out.
- ``regimes`` / ``fits`` / ``series``: the measured series split into absorption- and
  swelling-dominated regimes, fitted, and turned into the figures the optimiser uses.
"""
