"""``segment_video``: segment the primary moving object of user videos with a trained model.

An application over the library: it imports ``engine``, ``models``, ``datasets`` and
``utils``, and none of them imports it. ``scripts/segment_video.py`` is its entry point.

* :mod:`segment_video.cli`: the command-line options.
* :mod:`segment_video.config`: those options as one typed value (:class:`VideoConfig`).
* :mod:`segment_video.quality`: the named settings (``--quality fast`` / ``accurate``).
* :mod:`segment_video.pipeline`: the method (:func:`segment_video`; :func:`segment_videos` for
  several), memory and files pipelines.
* :mod:`segment_video.frames`: reading the input, the work folder's frames.
* :mod:`segment_video.flow`: flow estimation and flow images.
* :mod:`segment_video.overlay`: the overlay video or frames.
* :mod:`segment_video.outputs`: the output folder's manifest and what a run may replace.
* :mod:`segment_video.online`: the call into the online stage (``--online``).
* :mod:`segment_video.onnx_runtime`: the network exported to ONNX Runtime, cached beside the
  checkpoint (``--runtime onnx``, the default on a CPU); :mod:`segment_video.int8`: its int8
  quantisation (``--runtime int8``).
"""
from segment_video.config import VideoConfig
from segment_video.pipeline import BatchResult, SegmentResult, segment_video, segment_videos

__all__ = ["BatchResult", "SegmentResult", "VideoConfig", "segment_video", "segment_videos"]
