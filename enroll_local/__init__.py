"""The local AWS for the enrollment pipeline: a Rekognition emulator plugged into moto, and a
runner that plays the parts AWS plays (event source mappings, the API endpoint).

Dev-time only: nothing here is ever bundled into a Lambda.
"""
