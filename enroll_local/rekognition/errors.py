"""Rekognition errors with the codes and HTTP statuses of the real service."""

from __future__ import annotations

# Server faults per botocore's model; every other modeled error is a client fault (HTTP 400).
_SERVER_FAULTS = {"InternalServerError": 500}


class RekognitionError(Exception):
    """An error answered as Rekognition does: ``{"__type", "Code", "Message"}`` and a status."""

    def __init__(self, code: str, message: str, status: int | None = None) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.status = status if status is not None else _SERVER_FAULTS.get(code, 400)


def invalid_parameter(message: str = "Request has invalid parameters.") -> RekognitionError:
    return RekognitionError("InvalidParameterException", message)


def not_found(message: str) -> RekognitionError:
    return RekognitionError("ResourceNotFoundException", message)


def invalid_image_format(message: str = "Request has invalid image format.") -> RekognitionError:
    return RekognitionError("InvalidImageFormatException", message)


def image_too_large(message: str = "Image size is too large.") -> RekognitionError:
    return RekognitionError("ImageTooLargeException", message)


def invalid_s3_object(
    message: str = (
        "Unable to get object metadata from S3. Check object key, region and/or access permissions."
    ),
) -> RekognitionError:
    return RekognitionError("InvalidS3ObjectException", message)
