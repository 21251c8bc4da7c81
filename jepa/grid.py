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
