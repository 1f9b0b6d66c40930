"""Face-recognition training pieces: margin heads and the classifier holding the class centres."""

from vec2face.fr.heads import ArcFace, CosFace, MarginClassifier, MarginOutput, sample_classes

__all__ = ["ArcFace", "CosFace", "MarginClassifier", "MarginOutput", "sample_classes"]
