"""Content checks for image and label arrays: every data input passes them before any step uses it.

Images: shape (N, 32, 32, 3) and uint8 pixels 0..255. Other integer dtypes are accepted only when every
value is 0..255 (then converted to uint8, which is exact); floats are refused, never rounded or cast.
Labels: one integer class index per image, shape (N,) or (N, 1), each within 0..num_classes-1.
Each problem is its own one-line KdbenchError naming the file, the array and the fix.
"""

from __future__ import annotations

import numpy as np

from kdbench import KdbenchError

IMAGE_SHAPE = (32, 32, 3)


def check_images(images, where: str) -> np.ndarray:
    """Return `images` as uint8 (N, 32, 32, 3), or refuse them; `where` names the file and array."""
    images = np.asarray(images)
    if images.dtype.kind not in "biuf":
        raise KdbenchError(f"{where} has dtype {images.dtype}; expected uint8 pixel values 0..255")
    if images.ndim != 4 or images.shape[1:] != IMAGE_SHAPE:
        hint = ""
        if images.ndim == 4 and images.shape[1:] == (3, 32, 32):
            hint = " (channels first? save x.transpose(0, 2, 3, 1))"
        elif images.ndim == 2 and images.shape[1] == 3 * 32 * 32:
            hint = " (flat CIFAR rows? save x.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1))"
        raise KdbenchError(f"{where} has shape {images.shape}, expected (N, 32, 32, 3){hint}")
    if images.dtype.kind == "f":
        bad = int((~np.isfinite(images)).sum())
        if bad:
            raise KdbenchError(f"{where} holds {bad} NaN/inf values; expected uint8 pixel values 0..255: "
                               "rebuild it from the original images")
        low, high = (float(images.min()), float(images.max())) if images.size else (0.0, 0.0)
        if high <= 1.0 and low >= 0.0:
            fix = "they look scaled to 0..1: save (x * 255).round().astype(np.uint8)"
        elif low < 0.0:
            fix = "they look normalised or preprocessed: save the raw 0..255 pixels as uint8"
        else:
            fix = "save x.astype(np.uint8) if every value is a whole number 0..255"
        raise KdbenchError(f"{where} has dtype {images.dtype} (values {low:g} to {high:g}); expected uint8 "
                           f"pixel values 0..255: {fix}")
    if images.dtype.kind == "b":
        raise KdbenchError(f"{where} has dtype bool; expected uint8 pixel values 0..255")
    if images.dtype != np.uint8 and images.size:
        low, high = int(images.min()), int(images.max())
        if low < 0 or high > 255:
            raise KdbenchError(f"{where} holds pixel values from {low} to {high}, outside 0..255; "
                               "expected uint8 images: save the raw pixels as uint8")
    return images.astype(np.uint8, copy=False)  # exact: uint8 already, or integers checked to be 0..255


def check_labels(labels, num_classes: int, where: str) -> np.ndarray:
    """Return `labels` as int64 class indices of shape (N,), or refuse them; `where` names the file and array."""
    labels = np.asarray(labels)
    top = num_classes - 1
    if labels.ndim == 2 and labels.shape[1] > 1:
        raise KdbenchError(f"{where} has shape {labels.shape}: one-hot or per-class scores, not class indices; "
                           "expected one class index per image, shape (N,) or (N, 1): save y.argmax(axis=1)")
    if labels.ndim not in (1, 2):
        raise KdbenchError(f"{where} has shape {labels.shape}; expected one class index per image, "
                           "shape (N,) or (N, 1)")
    if labels.dtype.kind == "f":
        bad = int((~np.isfinite(labels)).sum())
        if bad:
            raise KdbenchError(f"{where} holds {bad} NaN/inf values; expected integer class indices 0..{top}")
        raise KdbenchError(f"{where} has dtype {labels.dtype}; expected integer class indices 0..{top}: "
                           "save y.astype(np.int64) if every value is a whole number")
    if labels.dtype.kind not in "iu":
        raise KdbenchError(f"{where} has dtype {labels.dtype}; expected integer class indices 0..{top} "
                           "(not class names, not booleans)")
    labels = labels.reshape(-1)
    if labels.size:
        low, high = int(labels.min()), int(labels.max())
        if low < 0 or high > top:
            raise KdbenchError(f"{where} holds labels from {low} to {high}, outside 0..{top} ({num_classes} "
                               "classes): the labels belong to another data set or encoding; check data.dataset")
    return labels.astype(np.int64, copy=False)


def check_pair(images, labels, num_classes: int, where: str, split: str) -> tuple[np.ndarray, np.ndarray]:
    """Check x_<split> and y_<split> of one file and that they hold one label per image."""
    images = check_images(images, f"{where}: x_{split}")
    labels = check_labels(labels, num_classes, f"{where}: y_{split}")
    if len(images) != len(labels):
        raise KdbenchError(f"{where}: x_{split} has {len(images)} images but y_{split} has {len(labels)} labels; "
                           "each image needs exactly one label")
    return images, labels
