"""A faithful emulator of Rekognition's face-collection and user-vector operations.

Layers (each knows nothing of the ones above it):
- ``images``, ``engines``: decode and validate photos, detect faces, compute descriptors.
- ``service`` and its stores: collections, faces, users, vector search, idempotency, quotas.
  Entry point: ``RekognitionEmulator.dispatch(operation, params) -> dict``.
- ``moto_plugin`` / ``server``: route boto3 / AWS CLI / Step Functions calls to ``dispatch``.
"""
