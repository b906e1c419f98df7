"""Running a deployment file as an app does: MediaPipe's `ImageSegmenter` (its Python
package, the same C++ task graph as its Android, iOS and web libraries)."""

import numpy as np


def mediapipe_masks(file, images):
    """`(category masks (N, H, W) uint8, the labels)` of `images` (uint8 RGB) run
    through the file at `file`."""
    import mediapipe as mp
    from mediapipe.tasks.python import BaseOptions
    from mediapipe.tasks.python.vision import ImageSegmenter, ImageSegmenterOptions

    options = ImageSegmenterOptions(
        base_options=BaseOptions(model_asset_path=file),
        output_category_mask=True,
        output_confidence_masks=False,
    )
    with ImageSegmenter.create_from_options(options) as segmenter:
        masks = [
            np.array(
                segmenter.segment(
                    mp.Image(image_format=mp.ImageFormat.SRGB, data=np.ascontiguousarray(image))
                ).category_mask.numpy_view()
            ).reshape(image.shape[:2])
            for image in images
        ]
        return np.stack(masks), list(segmenter.labels)
