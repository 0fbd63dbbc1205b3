"""Writes one benchmark's section of BENCHMARKS.md, leaving the rest of the file as it is.

Each benchmark owns the text between `<!-- NAME: begin -->` and `<!-- NAME: end -->`
(the markers included). When the file has no such markers yet, the section replaces
a legacy block, from the line that starts with `legacy_heading` up to the next
heading of the same or a higher level (or the file's end); failing that, it is
appended at the end.
"""

import os


def _level(line):
    return len(line) - len(line.lstrip("#")) if line.startswith("#") else 0


def write_section(path, name, body, legacy_heading=None):
    begin, end = f"<!-- {name}: begin -->", f"<!-- {name}: end -->"
    block = f"{begin}\n{body.rstrip()}\n{end}\n"
    old = ""
    if os.path.exists(path):
        with open(path) as f:
            old = f.read()
    if begin in old and end in old:
        head, rest = old.split(begin, 1)
        tail = rest.split(end, 1)[1].lstrip("\n")
        new = head + block + ("\n" + tail if tail else "")
    else:
        lines = old.splitlines(keepends=True)
        start = None
        if legacy_heading:
            start = next((i for i, l in enumerate(lines) if l.startswith(legacy_heading)), None)
        if start is not None:
            level = _level(lines[start])
            stop = next((i for i in range(start + 1, len(lines))
                         if 0 < _level(lines[i]) <= level and not _in_code(lines, i)), len(lines))
            new = "".join(lines[:start]) + block + ("\n" + "".join(lines[stop:]) if stop < len(lines) else "")
        else:
            new = old.rstrip("\n") + ("\n\n" if old else "") + block
    with open(path, "w") as f:
        f.write(new)


def _in_code(lines, index):
    """Whether line `index` is inside a fenced code block (a `# comment` in a sh block is no heading)."""
    fences = sum(1 for l in lines[:index] if l.startswith("```"))
    return fences % 2 == 1


def existing_section(path, name):
    """The current text of a section (markers excluded), or the whole file when it has none."""
    begin, end = f"<!-- {name}: begin -->", f"<!-- {name}: end -->"
    try:
        with open(path) as f:
            old = f.read()
    except OSError:
        return ""
    if begin in old and end in old:
        return old.split(begin, 1)[1].split(end, 1)[0]
    return old
