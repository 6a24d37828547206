"""What an image name may be: checked by the functions file and by the runner alike."""

from __future__ import annotations

__all__ = ["MAX_IMAGE_LENGTH", "valid_image"]

#: The longest image name accepted (a registry host, a path and a tag fit easily).
MAX_IMAGE_LENGTH = 512


def valid_image(image: str) -> bool:
    """Return whether an image name is at most :data:`MAX_IMAGE_LENGTH` printable characters."""
    return len(image) <= MAX_IMAGE_LENGTH and not any(
        ord(char) < 32 or ord(char) == 127 for char in image
    )
