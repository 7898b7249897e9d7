#!/usr/bin/env python3
"""Fixture host trees stored as overlays on a few base trees.

Most trees in tests/fixtures differ from a sibling in a handful of files, so
each is stored as an overlay: its directory holds a file `.kvmready-overlay`

    base intel-vtx                 the tree it starts from (itself complete or an overlay)
    remove sys/module/kvm_intel    a file or directory of the base that this tree lacks

and only the files that differ from the base or are not in it. A directory
without `.kvmready-overlay` is a complete tree (a base). The tests never read
tests/fixtures directly: the build composes every tree, complete, into
BUILD/tests/fixtures (the `compose` command below; tests/CMakeLists.txt runs
it), and the tests use that copy.

  fixture_overlay.py compose SRC OUT         every tree of SRC, complete, into OUT
  fixture_overlay.py split SRC TREE BASE     store SRC/TREE (complete now) as an overlay on SRC/BASE
  fixture_overlay.py full SRC TREE           store SRC/TREE complete again (no overlay)

Scripts that write trees (derive_fixtures.py, derive-system.py) call
read_tree() and write_tree() from here. Standard library only.
"""
import os
import shutil
import sys
import tempfile

OVERLAY = ".kvmready-overlay"


def _files_of(directory):
    """relative path -> bytes of every file under `directory` (the overlay file excepted)."""
    out = {}
    for root, dirs, files in os.walk(directory):
        dirs.sort()
        for f in files:
            p = os.path.join(root, f)
            rel = os.path.relpath(p, directory).replace(os.sep, "/")
            if rel == OVERLAY:
                continue
            with open(p, "rb") as fh:
                out[rel] = fh.read()
    return out


def _overlay_of(directory):
    """(base, [removed paths]) of an overlay directory, or None for a complete tree."""
    path = os.path.join(directory, OVERLAY)
    if not os.path.exists(path):
        return None
    base, removed = None, []
    with open(path, encoding="utf-8") as fh:
        for n, line in enumerate(fh, 1):
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            word, _, arg = line.partition(" ")
            if word == "base" and arg and base is None:
                base = arg
            elif word == "remove" and arg:
                removed.append(arg.strip("/"))
            else:
                raise ValueError(f"{path}:{n}: expected 'base TREE' once, then 'remove PATH' lines: {line!r}")
    if base is None:
        raise ValueError(f"{path}: names no base tree")
    return base, removed


def read_tree(src, name, _seen=()):
    """The complete tree `name` of the fixtures directory `src`: relative path -> bytes."""
    if name in _seen:
        raise ValueError(f"overlay cycle: {' -> '.join(_seen + (name,))}")
    directory = os.path.join(src, name)
    if not os.path.isdir(directory):
        raise FileNotFoundError(f"no fixture tree {directory}")
    overlay = _overlay_of(directory)
    if overlay is None:
        return _files_of(directory)
    base, removed = overlay
    files = read_tree(src, base, _seen + (name,))
    for r in removed:
        gone = [p for p in files if p == r or p.startswith(r + "/")]
        if not gone:
            raise ValueError(f"{directory}/{OVERLAY}: 'remove {r}' is not in {base}")
        for p in gone:
            del files[p]
    files.update(_files_of(directory))
    return files


def _removals(base_files, files):
    """The shortest list of paths whose removal takes base_files' paths absent from files."""
    gone = sorted(p for p in base_files if p not in files)
    out = []
    for p in gone:
        if out and p.startswith(out[-1] + "/"):
            continue
        # The highest directory whose base files are all gone and which holds nothing of files.
        parts = p.split("/")
        pick = p
        for i in range(1, len(parts)):
            d = "/".join(parts[:i])
            if not any(q.startswith(d + "/") for q in files) and all(
                    q not in files for q in base_files if q.startswith(d + "/")):
                pick = d
                break
        out.append(pick)
    return out


def _write_files(directory, files):
    for rel, data in sorted(files.items()):
        p = os.path.join(directory, rel)
        os.makedirs(os.path.dirname(p), exist_ok=True)
        with open(p, "wb") as fh:
            fh.write(data)


def write_tree(src, name, files, base=None):
    """Store the complete tree `files` (relative path -> bytes) as src/name:
    an overlay on src/base, or complete when base is None."""
    directory = os.path.join(src, name)
    with tempfile.TemporaryDirectory(dir=src) as tmp:
        staged = os.path.join(tmp, name)
        os.makedirs(staged)
        if base is None:
            _write_files(staged, files)
        else:
            base_files = read_tree(src, base)
            _write_files(staged, {p: d for p, d in files.items() if base_files.get(p) != d})
            lines = ["# This tree is the base tree below, plus the files beside this one,",
                     "# minus the paths listed after 'remove' (tests/support/fixture_overlay.py).",
                     f"base {base}"] + [f"remove {r}" for r in _removals(base_files, files)]
            with open(os.path.join(staged, OVERLAY), "w", encoding="utf-8") as fh:
                fh.write("\n".join(lines) + "\n")
        if os.path.exists(directory):
            shutil.rmtree(directory)
        os.rename(staged, directory)


def trees(src):
    return sorted(d for d in os.listdir(src) if os.path.isdir(os.path.join(src, d)) and not d.startswith("."))


def compose(src, out):
    """Every tree of src, complete, into out (replaced as a whole)."""
    parent = os.path.dirname(os.path.abspath(out))
    os.makedirs(parent, exist_ok=True)
    staged = tempfile.mkdtemp(prefix=".fixtures-", dir=parent)
    try:
        for name in trees(src):
            _write_files(os.path.join(staged, name), read_tree(src, name))
        if os.path.exists(out):
            old = out + ".old"
            shutil.rmtree(old, ignore_errors=True)
            os.rename(out, old)
            shutil.rmtree(old)
        os.rename(staged, out)
    except BaseException:
        shutil.rmtree(staged, ignore_errors=True)
        raise


def main(argv):
    if len(argv) == 3 and argv[0] == "compose":
        compose(argv[1], argv[2])
    elif len(argv) == 4 and argv[0] == "split":
        src, name, base = argv[1:]
        write_tree(src, name, read_tree(src, name), base)
    elif len(argv) == 3 and argv[0] == "full":
        src, name = argv[1:]
        write_tree(src, name, read_tree(src, name))
    else:
        sys.stderr.write(__doc__)
        return 64
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
