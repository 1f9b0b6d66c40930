"""Dataset formats (image folders, LMDB, insightface RecordIO, verification .bin,
Parquet manifests), format detection, conversion and the WebFace subset step."""

from vec2face.data.base import FaceDataset, Sample
from vec2face.data.convert import convert_dataset
from vec2face.data.detect import detect_format, inspect_dataset, open_dataset
from vec2face.data.imagefolder import ImageFolderDataset, write_imagefolder
from vec2face.data.images import decode_image, encode_image
from vec2face.data.lmdb_format import LmdbDataset, write_lmdb
from vec2face.data.manifest import read_manifest, write_manifest
from vec2face.data.recordio import RecordIODataset, write_recordio
from vec2face.data.subset import SubsetConfig, make_subset
from vec2face.data.verification_bin import read_bin, write_bin

__all__ = [
    "FaceDataset",
    "ImageFolderDataset",
    "LmdbDataset",
    "RecordIODataset",
    "Sample",
    "SubsetConfig",
    "convert_dataset",
    "decode_image",
    "detect_format",
    "encode_image",
    "inspect_dataset",
    "make_subset",
    "open_dataset",
    "read_bin",
    "read_manifest",
    "write_bin",
    "write_imagefolder",
    "write_lmdb",
    "write_manifest",
    "write_recordio",
]
