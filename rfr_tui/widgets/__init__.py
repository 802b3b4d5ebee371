"""Widgets of the rfr application: face image, state labels (and later candidate list, charts, job progress).

Import the modules themselves: ``face_image`` asks the terminal about graphics when imported.
"""
