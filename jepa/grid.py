"""Image sizes and patch grids: a neutral helper shared by the data layer and the models."""

from __future__ import annotations


def to_2tuple(size: int | tuple[int, int] | list[int]) -> tuple[int, int]:
    if isinstance(size, int):
        return (size, size)
    if len(size) != 2:
        raise ValueError(f"expected an int or a (height, width) pair, got {size!r}")
    return (int(size[0]), int(size[1]))


def patch_grid(img_size: int | tuple[int, int], patch_size: int) -> tuple[int, int]:
    """Number of patches along (height, width); refuses sizes the patch does not divide."""
    h, w = to_2tuple(img_size)
    if h % patch_size or w % patch_size:
        raise ValueError(
            f"image size {h}x{w} is not divisible by patch size {patch_size}: "
            f"choose an image size that is a multiple of {patch_size}"
        )
    return h // patch_size, w // patch_size


def tubelet_for(num_frames: int, tubelet_size: int | None) -> int:
    """Frames per token: 1 for images, ``tubelet_size`` for clips, V-JEPA's 2 when it is unset.
    The one place of that default, read by the models and the data layer alike."""
    if num_frames <= 1:
        return 1
    return tubelet_size if tubelet_size is not None else 2


def clip_grid(num_frames: int, img_size: int | tuple[int, int], patch_size: int, tubelet_size: int) -> tuple[int, int, int]:
    """Number of tokens along (time, height, width) of a clip; refuses a tubelet that does not
    divide the clip length and sizes the patch does not divide."""
    if tubelet_size < 1 or num_frames < 1:
        raise ValueError(f"frames ({num_frames}) and tubelet size ({tubelet_size}) must be positive")
    if num_frames % tubelet_size:
        raise ValueError(
            f"tubelet size {tubelet_size} does not divide frames_per_clip {num_frames}: "
            f"choose a clip length that is a multiple of {tubelet_size}"
        )
    return (num_frames // tubelet_size, *patch_grid(img_size, patch_size))

