"""Frame sources: where the checkpoint's grayscale frames come from.

Interface (``base.FrameSource``): ``open()``, ``read() -> ndarray (H x W uint8) | None``,
``close()``, usable as a context manager; failures raise ``passgate.errors.HardwareError``;
``close()`` then ``open()`` again is how a failed camera is retried.

=====================  =========================================================  ==========
source                 what                                                       needs
=====================  =========================================================  ==========
``PicameraSource``     Pi camera, Y plane of a lores YUV420 stream (``picam``)    picamera2
``WebcamSource``       V4L2 / USB webcam (``webcam``)                             ``[webcam]``
``FolderSource``       a folder of images, sorted (``files``)                     PIL
``VideoFileSource``    a video file (``files``)                                   ``[webcam]``
``PathSource``         either of the two, decided at each open (``files``)        -
``SceneSource``        a scripted simulated scene (``scene``)                     PIL
``FlakyFrameSource``   test double failing on a script (``fake``)                 -
``Paced``              caps another source at a frame rate (``base``)             -
=====================  =========================================================  ==========

Importing this package imports no camera library: picamera2 and OpenCV are imported when
their source opens.
"""

from passgate.hardware.camera.base import FrameSource, Paced, SourceBase
from passgate.hardware.camera.fake import FlakyFrameSource
from passgate.hardware.camera.files import FolderSource, PathSource, VideoFileSource
from passgate.hardware.camera.picam import CameraConfig, PicameraSource
from passgate.hardware.camera.scene import SceneSource, SceneStep
from passgate.hardware.camera.webcam import WebcamSource

__all__ = [
    "CameraConfig",
    "FlakyFrameSource",
    "FolderSource",
    "FrameSource",
    "Paced",
    "PathSource",
    "PicameraSource",
    "SceneSource",
    "SceneStep",
    "SourceBase",
    "VideoFileSource",
    "WebcamSource",
]
