"""Class labels (docs/design.md §4): where `sgan prep images --labels` takes them from, NVIDIA's
`dataset.json` format that `sgan data export` writes them back in, and `--class` values.

`--labels folders` follows torchvision's ImageFolder: each subfolder of --src is a class, the classes
sorted by name, every image under a subfolder (at any depth) labelled with its index. `--labels FILE.json`
reads StyleGAN2-ADA's `dataset.json`, `{"labels": [["path", class], ...]}` with paths relative to --src
and non-negative integer classes; NVIDIA's format names no classes, so they are "0", "1", ... up to the
largest label, unless the file also holds `"class_names"` (a list of distinct strings, one per class,
which NVIDIA's tools ignore and `sgan data export` writes so that names survive a round trip).

Both give one label per input, or None for an input without one: prep rejects those ("no label"),
since a dataset is labelled throughout or not at all. A file that cannot be read or is malformed,
or that labels an image not under --src, is a usage error before anything is built.
"""

from __future__ import annotations

import json
from pathlib import Path, PurePosixPath, PureWindowsPath

from stylegan_cli.core.errors import UsageError

FOLDERS = "folders"
NAMES_SHOWN = 10  # class names listed in an error message before "..."


def folder_labels(inputs: list[str], src: str) -> tuple[list[int | None], list[str]]:
    """Labels of `inputs` (posix paths relative to --src) by their first folder, and the sorted class names;
    None for an image directly in --src."""
    class_names = sorted({rel.split("/", 1)[0] for rel in inputs if "/" in rel})
    if not class_names:
        raise UsageError(f"--labels folders needs one subfolder per class under {src}, but its images lie "
                         "directly in it.")
    index = {name: k for k, name in enumerate(class_names)}
    return [index[rel.split("/", 1)[0]] if "/" in rel else None for rel in inputs], class_names


def file_labels(path: Path, inputs: list[str], src: str) -> tuple[list[int | None], list[str]]:
    """Labels of `inputs` from a dataset.json, and the class names; None for an image the file does not
    label. Every image the file names must be one of the inputs."""
    labelled, class_names = read_labels_file(path)
    listed = set(inputs)
    missing = [rel for rel in labelled if rel not in listed]
    if missing:
        more = f" (nor are {len(missing) - 1} more of its entries)" if len(missing) > 1 else ""
        raise UsageError(f"Labels file {path} names {missing[0]}, which is not an image under {src}{more}.")
    return [labelled.get(rel) for rel in inputs], class_names


def read_labels_file(path: Path) -> tuple[dict[str, int], list[str]]:
    """A dataset.json's labels by path (posix, relative to --src) and its class names."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as e:
        raise UsageError(f"Cannot read labels file {path}: {e.strerror or e}.") from e
    except ValueError as e:  # json.JSONDecodeError and UnicodeDecodeError
        raise UsageError(f"Labels file {path} is not valid JSON: {e}.") from e
    entries = data.get("labels") if isinstance(data, dict) else None
    if not isinstance(entries, list) or not entries:
        raise UsageError(f'Labels file {path} must hold {{"labels": [["path", class], ...]}} with at least one '
                         "entry, as NVIDIA's dataset.json does.")
    labelled: dict[str, int] = {}
    for k, entry in enumerate(entries):
        where = f"Labels file {path}, entry {k}"
        if not isinstance(entry, list) or len(entry) != 2 or not isinstance(entry[0], str) or not entry[0]:
            raise UsageError(f"{where}: must be a [path, class] pair, not {_short(entry)}.")
        rel, label = entry
        posix = PurePosixPath(rel)
        if posix.is_absolute() or PureWindowsPath(rel).is_absolute() or ".." in posix.parts:
            raise UsageError(f"{where}: path {rel!r} must be relative to --src, without '..'.")
        if isinstance(label, bool) or not isinstance(label, int) or label < 0:
            raise UsageError(f"{where}: the class of {rel} must be a non-negative integer, not {_short(label)}.")
        rel = posix.as_posix()
        if rel in labelled:
            raise UsageError(f"{where}: {rel} is labelled twice.")
        labelled[rel] = label
    top = max(labelled.values())
    if "class_names" not in data:
        return labelled, [str(k) for k in range(top + 1)]
    names = data["class_names"]
    if (not isinstance(names, list) or not all(isinstance(n, str) and n for n in names)
            or len(set(names)) != len(names)):
        raise UsageError(f"Labels file {path}: class_names must be a list of distinct non-empty strings.")
    if top >= len(names):
        raise UsageError(f"Labels file {path} uses class {top}, but its class_names name only {len(names)} "
                         "classes.")
    return labelled, names


def dataset_json(paths: list[str], labels: list[int], class_names: list[str]) -> dict:
    """NVIDIA's dataset.json for images at `paths` (relative to the file's folder), with the class names."""
    return {"labels": [[p, int(label)] for p, label in zip(paths, labels)], "class_names": class_names}


def class_index(value: str, class_names: list[str]) -> int:
    """The class `value` names: a class name, else an index ("3"); a UsageError listing the choices otherwise.
    A name wins over an index where a dataset names its classes with numbers in another order."""
    if value in class_names:
        return class_names.index(value)
    if value.isascii() and value.isdigit() and int(value) < len(class_names):
        return int(value)
    if not class_names:
        raise UsageError(f"Class {value!r} cannot be chosen: there are no classes (the data is unlabelled).")
    shown = ", ".join(class_names[:NAMES_SHOWN]) + (", ..." if len(class_names) > NAMES_SHOWN else "")
    raise UsageError(f"Class {value!r} is neither a class name ({shown}) nor an index from 0 to "
                     f"{len(class_names) - 1}.")


def _short(value) -> str:
    text = json.dumps(value)
    return text if len(text) <= 40 else text[:37] + "..."
